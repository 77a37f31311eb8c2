#define _GNU_SOURCE
#include "CHBONEPosix.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int chbone_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int chbone_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, data); }
int chbone_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int chbone_epoll_wait(int epfd, chbone_event *events, int max_events, int timeout_ms) {
    struct epoll_event raw[256];
    if (max_events > 256) max_events = 256;
    int n = epoll_wait(epfd, raw, max_events, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i].data = raw[i].data.u64;
        events[i].events = raw[i].events;
    }
    return n;
}

int chbone_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
int chbone_eventfd_signal(int fd) { uint64_t one = 1; return (int)write(fd, &one, sizeof one); }
int chbone_eventfd_drain(int fd) { uint64_t v; return (int)read(fd, &v, sizeof v); }

int chbone_accept(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return accept4(fd, (struct sockaddr *)addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int chbone_socket(int family, int type) { return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int chbone_original_dst(int fd, int family, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    if (family == AF_INET6) return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, addr, len);
    return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, addr, len);
}

int chbone_set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

int chbone_get_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

long chbone_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    return (long)rl.rlim_cur;
}

void chbone_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

uint64_t chbone_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t chbone_process_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void chbone_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

const int chbone_sol_tcp = IPPROTO_TCP;
const int chbone_tcp_nodelay = TCP_NODELAY;
const int chbone_tcp_keepidle = TCP_KEEPIDLE;
const int chbone_tcp_keepintvl = TCP_KEEPINTVL;
const int chbone_tcp_keepcnt = TCP_KEEPCNT;
const int chbone_so_keepalive = SO_KEEPALIVE;
const int chbone_so_reuseport = SO_REUSEPORT;
const int chbone_so_reuseaddr = SO_REUSEADDR;
const int chbone_ip_freebind = IP_FREEBIND;
const int chbone_so_mark = SO_MARK;
const int chbone_msg_nosignal = MSG_NOSIGNAL;
const int chbone_shut_wr = SHUT_WR;

uint64_t chbone_heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}
