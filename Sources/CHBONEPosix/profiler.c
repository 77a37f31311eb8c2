#define _GNU_SOURCE
#include "CHBONEPosix.h"
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

// A bounded multi-producer, single-consumer ring (per-slot sequence numbers): signal handlers on
// any thread claim a slot with one compare-and-swap and never wait; the admin thread drains.
enum { RING_SLOTS = 2048, RING_MASK = RING_SLOTS - 1 };

typedef struct {
    _Atomic uint64_t seq;
    chbone_profile_sample sample;
} slot_t;

static slot_t *ring;                  // mapped at start, unmapped at stop once no handler runs
static _Atomic uint64_t enqueue_at;
static uint64_t dequeue_at;           // the consumer's only
static _Atomic int enabled;
static _Atomic int in_handler;        // handlers between their check of `enabled` and their return
static _Atomic int running;           // a profile is between start and stop
static _Atomic uint64_t dropped;
static _Atomic int handler_installed;

static uint64_t interrupted_pc(void *context) {
    ucontext_t *uc = context;
#if defined(__x86_64__)
    return (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uint64_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static void record(void **frames, int n, uint64_t pc) {
    // frames[0] is this handler, then the kernel's signal trampoline, then the interrupted code.
    int first = 1;
    for (int i = 1; i < n; i++) {
        if ((uint64_t)frames[i] == pc) { first = i; break; }
    }
    uint64_t pos = atomic_load_explicit(&enqueue_at, memory_order_relaxed);
    slot_t *s;
    for (;;) {
        s = &ring[pos & RING_MASK];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&enqueue_at, &pos, pos + 1, memory_order_relaxed, memory_order_relaxed)) break;
        } else if (diff < 0) {
            atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
            return;
        } else {
            pos = atomic_load_explicit(&enqueue_at, memory_order_relaxed);
        }
    }
    int depth = 0;
    for (int i = first; i < n && depth < CHBONE_PROFILE_MAX_FRAMES; i++) s->sample.frames[depth++] = (uint64_t)frames[i];
    s->sample.depth = depth;
    s->sample.tid = (int32_t)syscall(SYS_gettid);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

static void on_sigprof(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)info;
    int saved_errno = errno;
    atomic_fetch_add(&in_handler, 1);
    if (atomic_load(&enabled)) {
        void *frames[CHBONE_PROFILE_MAX_FRAMES + 2];
        int n = backtrace(frames, CHBONE_PROFILE_MAX_FRAMES + 2);
        record(frames, n, interrupted_pc(context));
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved_errno;
}

int chbone_profiler_start(int hz) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&running, &expected, 1)) { errno = EBUSY; return -1; }
    if (hz < 1 || hz > 1000000) { atomic_store(&running, 0); errno = EINVAL; return -1; }
    void *mapped = mmap(NULL, sizeof(slot_t) * RING_SLOTS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) { atomic_store(&running, 0); return -1; }
    ring = mapped;
    for (uint64_t i = 0; i < RING_SLOTS; i++) atomic_store_explicit(&ring[i].seq, i, memory_order_relaxed);
    atomic_store(&enqueue_at, 0);
    dequeue_at = 0;
    atomic_store(&dropped, 0);
    // glibc loads libgcc_s (and allocates) at the first backtrace: do that here, not in a handler.
    void *warm[4];
    (void)backtrace(warm, 4);
    if (!atomic_exchange(&handler_installed, 1)) {
        // Installed once and never removed: a SIGPROF still pending when the timer stops must not
        // meet the default action (which ends the process).
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigprof;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGPROF, &sa, NULL) != 0) {
            int e = errno;
            atomic_store(&handler_installed, 0);
            munmap(ring, sizeof(slot_t) * RING_SLOTS);
            ring = NULL;
            atomic_store(&running, 0);
            errno = e;
            return -1;
        }
    }
    atomic_store(&enabled, 1);
    long interval = 1000000L / hz;
    if (interval < 1) interval = 1;
    struct itimerval timer = { .it_interval = { interval / 1000000L, interval % 1000000L },
                               .it_value = { interval / 1000000L, interval % 1000000L } };
    if (setitimer(ITIMER_PROF, &timer, NULL) != 0) {
        int e = errno;
        chbone_profiler_stop();
        errno = e;
        return -1;
    }
    return 0;
}

void chbone_profiler_stop(void) {
    if (!atomic_load(&running)) return;
    struct itimerval off;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_PROF, &off, NULL);
    atomic_store(&enabled, 0);
    // A handler that saw `enabled` set may still be writing into the ring.
    while (atomic_load(&in_handler) != 0) sched_yield();
    munmap(ring, sizeof(slot_t) * RING_SLOTS);
    ring = NULL;
    atomic_store(&running, 0);
}

int chbone_profiler_drain(chbone_profile_sample *out, int max) {
    if (!atomic_load(&running) || ring == NULL) return 0;
    int count = 0;
    while (count < max) {
        slot_t *s = &ring[dequeue_at & RING_MASK];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq != dequeue_at + 1) break;
        out[count++] = s->sample;
        atomic_store_explicit(&s->seq, dequeue_at + RING_SLOTS, memory_order_release);
        dequeue_at++;
    }
    return count;
}

uint64_t chbone_profiler_dropped(void) { return atomic_load_explicit(&dropped, memory_order_relaxed); }

int chbone_dladdr(const void *addr, uint64_t *base, const char **symbol) {
    Dl_info info;
    if (dladdr(addr, &info) == 0) return 0;
    *base = (uint64_t)(uintptr_t)info.dli_fbase;
    *symbol = info.dli_sname;
    return 1;
}
