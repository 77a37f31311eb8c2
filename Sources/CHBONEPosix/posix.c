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
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/nsfs.h>

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
const int chbone_tcp_user_timeout = TCP_USER_TIMEOUT;
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


int chbone_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int chbone_is_netns(int fd) {
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type >= 0) return type == CLONE_NEWNET ? 1 : 0;
    // Older kernels: an nsfs file whose link reads net:[inode].
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -1;
    if ((unsigned long)fs.f_type != 0x6e736673UL) return 0;   // NSFS_MAGIC
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) return -1;
    link[n] = 0;
    return strncmp(link, "net:[", 5) == 0 ? 1 : 0;
}

int chbone_open_own_netns(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
    return open(path, O_RDONLY | O_CLOEXEC);
}

int chbone_seqpacket_connect(const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

long chbone_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds, int *truncated) {
    // Room for more descriptors than allowed, so a sender passing too many is seen (and all closed).
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(int) * 16)]; } control;
    struct iovec iov = { buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *nfds = 0;
    *truncated = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < max_fds) fds[(*nfds)++] = received[i];
            else close(received[i]);   // more than the caller takes: never leaked
        }
        if (count > max_fds) *truncated = 1;
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    return (long)n;
}

long chbone_send_with_fd(int fd, const void *buf, size_t len, int fd_to_send) {
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(int))]; } control;
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd_to_send >= 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd_to_send, sizeof(int));
    }
    return (long)sendmsg(fd, &msg, MSG_NOSIGNAL);
}

int chbone_poll_readable(int fd, int timeout_ms) {
    struct pollfd p = { fd, POLLIN, 0 };
    int rc;
    // poll is never restarted after a signal handler (a CPU profile's SIGPROF); the wait starts over.
    do { rc = poll(&p, 1, timeout_ms); } while (rc < 0 && errno == EINTR);
    if (rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) return 1;
    return rc;
}

int chbone_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

const int chbone_ip_transparent = IP_TRANSPARENT;
const int chbone_sol_ip = SOL_IP;
