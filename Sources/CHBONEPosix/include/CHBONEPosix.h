#ifndef CHBONE_POSIX_H
#define CHBONE_POSIX_H
// Linux calls Swift's Glibc module does not import (epoll, eventfd, accept4, SO_ORIGINAL_DST).
// Each function returns what the syscall returns; errno is left for the caller to read.
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

/// One epoll event, unpacked: epoll_event is packed on x86_64 and Swift imports it poorly.
typedef struct {
    uint64_t data;
    uint32_t events;
} chbone_event;

enum {
    CHBONE_EV_IN = 0x001,
    CHBONE_EV_OUT = 0x004,
    CHBONE_EV_ERR = 0x008,
    CHBONE_EV_HUP = 0x010,
    CHBONE_EV_RDHUP = 0x2000,
    CHBONE_EV_ET = (int)(1u << 31),
};

int chbone_epoll_create(void);
int chbone_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int chbone_epoll_del(int epfd, int fd);
int chbone_epoll_wait(int epfd, chbone_event *events, int max_events, int timeout_ms);

int chbone_eventfd(void);
int chbone_eventfd_signal(int fd);
int chbone_eventfd_drain(int fd);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int chbone_accept(int fd, struct sockaddr_storage *addr, socklen_t *len);
/// socket() with SOCK_NONBLOCK | SOCK_CLOEXEC.
int chbone_socket(int family, int type);
/// SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6) of a redirected connection.
int chbone_original_dst(int fd, int family, struct sockaddr_storage *addr, socklen_t *len);
int chbone_set_int_option(int fd, int level, int name, int value);
int chbone_get_socket_error(int fd);
/// RLIMIT_NOFILE soft := hard; returns the new soft limit or -1.
long chbone_raise_nofile_limit(void);
void chbone_ignore_sigpipe(void);
/// Monotonic clock in nanoseconds.
uint64_t chbone_monotonic_ns(void);
/// Thread CPU time in nanoseconds (for benchmarks).
uint64_t chbone_process_cpu_ns(void);
/// Heap bytes in use (malloc'd and not freed, incl. mmapped chunks), from glibc's mallinfo2.
uint64_t chbone_heap_in_use(void);
/// Sets the calling thread's name (shown by top -H and perf).
void chbone_set_thread_name(const char *name);

extern const int chbone_sol_tcp;
extern const int chbone_tcp_nodelay;
extern const int chbone_tcp_keepidle;
extern const int chbone_tcp_keepintvl;
extern const int chbone_tcp_keepcnt;
extern const int chbone_so_keepalive;
extern const int chbone_tcp_user_timeout;
extern const int chbone_so_reuseport;
extern const int chbone_so_reuseaddr;
extern const int chbone_ip_freebind;
extern const int chbone_so_mark;
extern const int chbone_msg_nosignal;
extern const int chbone_shut_wr;
/// Network namespaces (in-pod mode). setns(fd, CLONE_NEWNET) for the calling thread.
int chbone_setns_net(int fd);
/// 1 when fd is a network namespace (ioctl NS_GET_NSTYPE, else nsfs + /proc/self/fd link), 0 when
/// it is something else, -1 when it cannot be told.
int chbone_is_netns(int fd);
/// The calling thread's current network namespace, opened O_RDONLY|O_CLOEXEC.
int chbone_open_own_netns(void);

/// A connected AF_UNIX SOCK_SEQPACKET socket (blocking, close-on-exec) to path, or -1.
int chbone_seqpacket_connect(const char *path);
/// recvmsg of one datagram with up to max_fds SCM_RIGHTS descriptors (received close-on-exec).
/// Returns the byte count (0: the peer closed) or -1; *nfds the descriptors received; *truncated 1
/// when the datagram or its control data did not fit (MSG_TRUNC / MSG_CTRUNC).
long chbone_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds, int *truncated);
/// send of one datagram with one SCM_RIGHTS descriptor (fd_to_send >= 0) or none.
long chbone_send_with_fd(int fd, const void *buf, size_t len, int fd_to_send);
/// poll for readability: 1 readable, 0 timeout, -1 error.
int chbone_poll_readable(int fd, int timeout_ms);

/// CPUs in the calling thread's affinity mask (taskset), or -1.
int chbone_affinity_cpus(void);

/// CPU profiler (the admin port's /debug/pprof/profile). SIGPROF at `hz` per second of the
/// process's CPU time (setitimer ITIMER_PROF, as Go's and pprof-rs's profilers); each signal
/// records the interrupted thread's call stack (glibc backtrace, .eh_frame unwinding) into a
/// fixed lock-free ring that one consumer drains. The handler takes no lock and never allocates.
enum { CHBONE_PROFILE_MAX_FRAMES = 64 };
typedef struct {
    uint64_t frames[CHBONE_PROFILE_MAX_FRAMES];  /// innermost first: the interrupted PC, then return addresses
    int32_t depth;
    int32_t tid;
} chbone_profile_sample;
/// 0, or -1 with errno: EBUSY when a profile is already running, ENOMEM, or setitimer's.
int chbone_profiler_start(int hz);
/// Stops the timer and waits for running handlers; samples not drained yet are discarded.
void chbone_profiler_stop(void);
/// Moves up to `max` recorded samples into `out`; returns how many. One caller at a time.
int chbone_profiler_drain(chbone_profile_sample *out, int max);
/// Samples lost because the ring was full since start.
uint64_t chbone_profiler_dropped(void);
/// Heap profiler (the admin port's /debug/pprof/heap). The sampler itself is the malloc family
/// of the `hbone` executable (target CHBONEHeapSampler, linked into that binary only and left out
/// under the sanitizers, which bring their own allocator): when active, it records the call stack
/// of about one allocation per `interval` bytes allocated (a Poisson process over bytes, as
/// jemalloc's lg_prof_sample and Go's MemProfileRate), counted per stack, and keeps the sampled
/// allocations' addresses until they are freed. These calls reach it through weak symbols, so
/// every other binary links without it and sees "unavailable".
enum { CHBONE_HEAP_MAX_FRAMES = 64 };
/// One call stack's allocations. Objects are in 1/65536ths; both objects and bytes are already
/// scaled by each sample's probability (1 - e^(-size/interval)): what the samples stand for.
typedef struct {
    uint64_t live_objects;       /// allocations not freed yet
    uint64_t live_bytes;
    uint64_t allocated_objects;  /// allocations since profiling was activated (and those still live from before)
    uint64_t allocated_bytes;
    uint32_t live_samples;
    uint32_t allocated_samples;
    int32_t depth;
    int32_t reserved;
    uint64_t frames[CHBONE_HEAP_MAX_FRAMES];     /// return addresses, innermost (malloc's caller) first
} chbone_heap_stack;
enum { CHBONE_HEAP_OBJECT_UNIT = 65536 };
typedef struct {
    uint64_t live;        /// sampled allocations not freed yet
    uint64_t stacks;      /// call stacks recorded
    uint64_t dropped;     /// samples not recorded: 16,384 stacks, or 16,384 live samples, were held
    uint64_t interval;    /// mean bytes between samples
    int32_t active;
    int32_t available;
} chbone_heap_status;
/// 1 when the sampler is linked into this binary.
int chbone_heap_profiler_available(void);
/// Starts (`active` 1, `interval` bytes, at least 1) or stops taking new samples. Allocations
/// sampled before stay recorded until freed; starting again restarts every stack's allocated
/// counts from what it still holds. -1 with errno ENOSYS when unavailable, or ENOMEM.
int chbone_heap_profiler_set_active(int active, uint64_t interval);
void chbone_heap_profiler_status(chbone_heap_status *out);
/// Copies up to `max` stacks into `out`; returns how many there are, which may be more than
/// `max` (call again with room for them).
int64_t chbone_heap_profiler_snapshot(chbone_heap_stack *out, int64_t max);
/// dladdr: the loaded object holding `addr` (its load base) and the dynamic symbol holding it
/// (NULL when none). 1 when an object holds it, else 0.
int chbone_dladdr(const void *addr, uint64_t *base, const char **symbol);

extern const int chbone_ip_transparent;
extern const int chbone_sol_ip;

#endif
