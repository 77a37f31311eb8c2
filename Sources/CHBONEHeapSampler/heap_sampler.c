#define _GNU_SOURCE
#include "CHBONEHeapSampler.h"
#include <errno.h>
#include <execinfo.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// A sanitizer replaces malloc itself; two replacements cannot both win, so under one the
// sampler is left out (and the profiler reads as unavailable). Only glibc has the __libc_* entry
// points this forwards to.
#if defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#    define SAMPLER_LEFT_OUT 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__linux__) || !defined(__GLIBC__)
#  define SAMPLER_LEFT_OUT 1
#endif

#ifndef SAMPLER_LEFT_OUT

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

// Two tables, mapped once at the first activation and never unmapped (a free may look a pointer
// up at any time after):
// - call stacks: a dense array with an open-addressing index (linear probing, at most half full)
//   by the hash of the frames; each stack sums what its samples stand for, live and allocated.
//   Keyed by stack alone (as jemalloc's), so their number is bounded by the code's call paths.
// - live samples: an open-addressing table (at most half full) from the sampled address to its
//   stack and what it added there, which its free takes off again, exactly.
enum { STACKS = 16384, STACK_SLOTS = 2 * STACKS, LIVE_SLOTS = 32768, LIVE_MAX = LIVE_SLOTS / 2, FILTER_SLOTS = 1 << 16 };
typedef struct { uintptr_t ptr; uint32_t stack; uint32_t reserved; uint64_t objects; uint64_t bytes; } live_slot;   // ptr 0: empty

static chbone_heap_stack *stacks;
static uint64_t *stack_hashes;            // per stack
static uint32_t *stack_slots;             // stack number + 1; 0: empty
static uint32_t stacks_used;
static live_slot *live_slots;
static _Atomic(void *) tables;            // set (release) once the tables above are mapped

// A free must find out whether its pointer was sampled without a lock. A counter per hash of
// the address, raised and lowered under the lock, answers "certainly not" for almost every free:
// one byte read in a 64 KiB table. A counter that reaches 255 stays there (always "maybe").
static _Atomic uint8_t filter[FILTER_SLOTS];

static _Atomic uint64_t live;             // live samples held
static _Atomic uint64_t dropped;
static _Atomic int active;
static _Atomic uint64_t mean_interval = 512 * 1024;
static _Atomic uint32_t epoch;            // raised at each activation: threads draw anew
static atomic_flag table_lock = ATOMIC_FLAG_INIT;

// Per thread (static TLS in the executable: an %fs-relative load, never an allocation).
static __thread int64_t bytes_until_sample;
static __thread uint32_t thread_epoch;
static __thread uint64_t rng;
static __thread int in_sampler;           // backtrace() may allocate: never sample from inside

static void lock(void) {
    for (int spins = 0; atomic_flag_test_and_set_explicit(&table_lock, memory_order_acquire); spins++) {
        if (spins > 64) sched_yield();
    }
}

static void unlock(void) { atomic_flag_clear_explicit(&table_lock, memory_order_release); }

static inline uint64_t hash(uintptr_t p) { return ((uint64_t)p >> 4) * 0x9E3779B97F4A7C15ull; }

static inline _Atomic uint8_t *filter_of(uintptr_t p) { return &filter[(hash(p) >> 48) & (FILTER_SLOTS - 1)]; }

// The bytes to allocate before the next sample: exponential with the configured mean, so each
// byte is equally likely to be the sampled one and an allocation of `size` is sampled with
// probability 1 - exp(-size/mean), which its sample is scaled by.
static int64_t draw(void) {
    if (rng == 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        rng = ((uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)syscall(SYS_gettid) << 32) ^ (uintptr_t)&rng;
        if (rng == 0) rng = 1;
    }
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double u = (double)((rng >> 11) + 1) * 0x1.0p-53;   // (0, 1]
    double d = -log(u) * (double)atomic_load_explicit(&mean_interval, memory_order_relaxed);
    if (d < 1) return 1;
    if (d > 1e15) return (int64_t)1e15;
    return (int64_t)d;
}

static uint64_t stack_hash(void *const *frames, int depth) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

// Called with the lock held: the stack's number, added if new; UINT32_MAX when the table is full.
static uint32_t find_stack(void *const *frames, int depth) {
    uint64_t h = stack_hash(frames, depth);
    for (uint32_t i = (uint32_t)h & (STACK_SLOTS - 1);; i = (i + 1) & (STACK_SLOTS - 1)) {
        uint32_t n = stack_slots[i];
        if (n == 0) {
            if (stacks_used == STACKS) return UINT32_MAX;
            n = stacks_used++;
            chbone_heap_stack *s = &stacks[n];
            memset(s, 0, offsetof(chbone_heap_stack, frames));
            s->depth = depth;
            for (int f = 0; f < depth; f++) s->frames[f] = (uint64_t)(uintptr_t)frames[f];
            stack_hashes[n] = h;
            stack_slots[i] = n + 1;
            return n;
        }
        n--;
        if (stack_hashes[n] != h || stacks[n].depth != depth) continue;
        int same = 1;
        for (int f = 0; f < depth && same; f++) same = stacks[n].frames[f] == (uint64_t)(uintptr_t)frames[f];
        if (same) return n;
    }
}

static void take_off(const live_slot *slot) {
    chbone_heap_stack *s = &stacks[slot->stack];
    s->live_objects -= slot->objects;
    s->live_bytes -= slot->bytes;
    s->live_samples--;
}

// Called with the lock held.
static void record(uintptr_t p, size_t size, void **frames, int depth) {
    uint32_t n = find_stack(frames, depth);
    if (n == UINT32_MAX) { atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed); return; }
    double interval = (double)atomic_load_explicit(&mean_interval, memory_order_relaxed);
    double objects = 1.0 / -expm1(-(double)(size > 0 ? size : 1) / interval);   // the inverse of its probability
    live_slot entry = { .ptr = p, .stack = n, .objects = (uint64_t)(objects * CHBONE_HEAP_OBJECT_UNIT + 0.5),
                        .bytes = (uint64_t)(objects * (double)size + 0.5) };
    chbone_heap_stack *s = &stacks[n];
    s->allocated_objects += entry.objects;
    s->allocated_bytes += entry.bytes;
    s->allocated_samples++;
    uint32_t i = (uint32_t)(hash(p) >> 32) & (LIVE_SLOTS - 1);
    while (live_slots[i].ptr != 0 && live_slots[i].ptr != p) i = (i + 1) & (LIVE_SLOTS - 1);
    if (live_slots[i].ptr == p) {
        take_off(&live_slots[i]);   // a free that went past this file: its address came back
    } else {
        if (atomic_load_explicit(&live, memory_order_relaxed) >= LIVE_MAX) {
            atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
            return;
        }
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
        _Atomic uint8_t *c = filter_of(p);
        uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
        if (v < 255) atomic_store_explicit(c, v + 1, memory_order_relaxed);
    }
    live_slots[i] = entry;
    s->live_objects += entry.objects;
    s->live_bytes += entry.bytes;
    s->live_samples++;
}

// Called with the lock held: takes `p`'s sample off its stack, when it has one.
static void erase(uintptr_t p) {
    uint32_t i = (uint32_t)(hash(p) >> 32) & (LIVE_SLOTS - 1);
    while (live_slots[i].ptr != p) {
        if (live_slots[i].ptr == 0) return;
        i = (i + 1) & (LIVE_SLOTS - 1);
    }
    take_off(&live_slots[i]);
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    // Backward-shift deletion: every entry after the hole that could live in it moves up, so a
    // probe never meets a gap before its key (no tombstones).
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & (LIVE_SLOTS - 1); live_slots[j].ptr != 0; j = (j + 1) & (LIVE_SLOTS - 1)) {
        uint32_t home = (uint32_t)(hash(live_slots[j].ptr) >> 32) & (LIVE_SLOTS - 1);
        // Move j into the hole unless its home lies cyclically in (hole, j].
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            live_slots[hole] = live_slots[j];
            hole = j;
        }
    }
    live_slots[hole].ptr = 0;
    _Atomic uint8_t *c = filter_of(p);
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    if (v > 0 && v < 255) atomic_store_explicit(c, v - 1, memory_order_relaxed);
}

static __attribute__((noinline)) void sample(void *p, size_t size, void *caller) {
    uint32_t e = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (thread_epoch != e) {
        // This thread's first allocation since (re)activation: start its count afresh.
        thread_epoch = e;
        bytes_until_sample = draw() - (int64_t)size;
        if (bytes_until_sample > 0) return;
    }
    bytes_until_sample = draw();
    if (p == NULL || in_sampler || atomic_load_explicit(&tables, memory_order_acquire) == NULL) return;
    in_sampler = 1;
    void *frames[CHBONE_HEAP_MAX_FRAMES + 4];
    int n = backtrace(frames, CHBONE_HEAP_MAX_FRAMES + 4);
    // frames[0] is this function, then the malloc family's entry point, then its caller: start
    // at that caller's return address, found by value (inlining may have merged frames).
    int first = n < 2 ? n : 2;
    for (int i = 0; i < n; i++) {
        if (frames[i] == caller) { first = i; break; }
    }
    int depth = n - first;
    if (depth > CHBONE_HEAP_MAX_FRAMES) depth = CHBONE_HEAP_MAX_FRAMES;
    lock();
    record((uintptr_t)p, size, frames + first, depth);
    unlock();
    in_sampler = 0;
}

static inline void note(void *p, size_t size, void *caller) {
    if (__builtin_expect(!atomic_load_explicit(&active, memory_order_relaxed), 1)) return;
    bytes_until_sample -= (int64_t)(size > INT64_MAX ? INT64_MAX : size);
    if (__builtin_expect(bytes_until_sample > 0, 1)) return;
    sample(p, size, caller);
}

// Before the memory goes back: once glibc has it, another thread may get the same address and
// record it, and this erase would take that record instead.
static inline void forget(void *p) {
    if (__builtin_expect(atomic_load_explicit(&live, memory_order_relaxed) == 0, 1) || p == NULL) return;
    if (atomic_load_explicit(filter_of((uintptr_t)p), memory_order_relaxed) == 0) return;
    lock();
    erase((uintptr_t)p);
    unlock();
}

void *malloc(size_t size) {
    void *p = __libc_malloc(size);
    note(p, size, __builtin_return_address(0));
    return p;
}

void free(void *ptr) {
    forget(ptr);
    __libc_free(ptr);
}

void *calloc(size_t count, size_t size) {
    void *p = __libc_calloc(count, size);
    size_t total;
    if (!__builtin_mul_overflow(count, size, &total)) note(p, total, __builtin_return_address(0));
    return p;
}

void *realloc(void *ptr, size_t size) {
    // A moved or shrunk block is a new allocation for the profile (as tcmalloc counts it). If
    // glibc fails, the old block stays but its record is gone: an out-of-memory corner.
    forget(ptr);
    void *p = __libc_realloc(ptr, size);
    note(p, size, __builtin_return_address(0));
    return p;
}

void *reallocarray(void *ptr, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) { errno = ENOMEM; return NULL; }
    forget(ptr);
    void *p = __libc_realloc(ptr, total);
    note(p, total, __builtin_return_address(0));
    return p;
}

void *memalign(size_t alignment, size_t size) {
    void *p = __libc_memalign(alignment, size);
    note(p, size, __builtin_return_address(0));
    return p;
}

void *aligned_alloc(size_t alignment, size_t size) {
    void *p = __libc_memalign(alignment, size);
    note(p, size, __builtin_return_address(0));
    return p;
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    note(p, size, __builtin_return_address(0));
    return 0;
}

void *valloc(size_t size) {
    void *p = __libc_valloc(size);
    note(p, size, __builtin_return_address(0));
    return p;
}

void *pvalloc(size_t size) {
    void *p = __libc_pvalloc(size);
    note(p, size, __builtin_return_address(0));
    return p;
}

int chbone_heap_sampler_set_active(int on, uint64_t interval) {
    if (!on) {
        atomic_store(&active, 0);
        return 0;
    }
    if (interval < 1) interval = 1;
    lock();
    if (atomic_load_explicit(&tables, memory_order_relaxed) == NULL) {
        size_t bytes = sizeof(chbone_heap_stack) * STACKS + sizeof(uint64_t) * STACKS + sizeof(uint32_t) * STACK_SLOTS
                     + sizeof(live_slot) * LIVE_SLOTS;
        // Pages are touched as they are used: a few hundred stacks and live samples cost a few
        // hundred KiB, not the 10 MiB reserved.
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            unlock();
            errno = ENOMEM;
            return -1;
        }
        stacks = m;
        stack_hashes = (uint64_t *)(stacks + STACKS);
        stack_slots = (uint32_t *)(stack_hashes + STACKS);
        live_slots = (live_slot *)(stack_slots + STACK_SLOTS);
        atomic_store_explicit(&tables, m, memory_order_release);
    }
    // A new window for the allocated counts: each stack starts from what it still holds.
    for (uint32_t n = 0; n < stacks_used; n++) {
        stacks[n].allocated_objects = stacks[n].live_objects;
        stacks[n].allocated_bytes = stacks[n].live_bytes;
        stacks[n].allocated_samples = stacks[n].live_samples;
    }
    unlock();
    // glibc loads libgcc_s (and allocates) at the first backtrace: here, not inside a malloc.
    in_sampler = 1;
    void *warm[4];
    (void)backtrace(warm, 4);
    in_sampler = 0;
    atomic_store(&mean_interval, interval);
    atomic_fetch_add(&epoch, 1);
    atomic_store(&active, 1);
    return 0;
}

void chbone_heap_sampler_status(chbone_heap_status *out) {
    out->live = atomic_load(&live);
    lock();
    out->stacks = stacks_used;
    unlock();
    out->dropped = atomic_load(&dropped);
    out->interval = atomic_load(&mean_interval);
    out->active = atomic_load(&active);
}

int64_t chbone_heap_sampler_snapshot(chbone_heap_stack *out, int64_t max) {
    if (atomic_load_explicit(&tables, memory_order_acquire) == NULL) return 0;
    int64_t n = 0;
    lock();
    for (uint32_t i = 0; i < stacks_used; i++) {
        if (stacks[i].allocated_samples == 0 && stacks[i].live_samples == 0) continue;
        if (n < max) memcpy(&out[n], &stacks[i], offsetof(chbone_heap_stack, frames) + sizeof(uint64_t) * (size_t)stacks[i].depth);
        n++;
    }
    unlock();
    return n;
}

#endif
