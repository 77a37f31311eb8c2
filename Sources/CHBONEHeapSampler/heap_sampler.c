#define _GNU_SOURCE
#include "CHBONEHeapSampler.h"
#include <errno.h>
#include <execinfo.h>
#include <math.h>
#include <sched.h>
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

// Live samples: a dense array of records, and an open-addressing index (linear probing, at most
// half full) from the allocation's address to its record. Mapped once, at the first activation,
// and never unmapped: a free may look a pointer up at any time after.
enum { RECORDS = 16384, INDEX_SLOTS = 2 * RECORDS, FILTER_SLOTS = 1 << 16 };
typedef struct { uintptr_t ptr; uint32_t record; } index_slot;   // ptr 0: empty

static chbone_heap_sample *records;
static uint32_t *free_records;            // a stack of record numbers given back by frees
static uint32_t free_count, never_used = 0;
static index_slot *slots;
static _Atomic(void *) tables;            // set (release) once the three above are mapped

// A free must find out whether its pointer was sampled without a lock. A counter per hash of
// the address, raised and lowered under the lock, answers "certainly not" for almost every free:
// one byte read in a 64 KiB table. A counter that reaches 255 stays there (always "maybe").
static _Atomic uint8_t filter[FILTER_SLOTS];

static _Atomic uint64_t live;
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

// The bytes to allocate before the next sample: exponential with the configured mean, so each
// byte is equally likely to be the sampled one and an allocation of `size` is sampled with
// probability 1 - exp(-size/mean) (which the profile's reader divides by).
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

// Called with the lock held.
static void insert(uintptr_t p, size_t size, void **frames, int depth) {
    uint32_t r;
    if (free_count > 0) r = free_records[--free_count];
    else if (never_used < RECORDS) r = never_used++;
    else { atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed); return; }
    chbone_heap_sample *s = &records[r];
    s->size = size;
    s->depth = depth;
    s->reserved = 0;
    for (int i = 0; i < depth; i++) s->frames[i] = (uint64_t)(uintptr_t)frames[i];
    uint64_t h = hash(p);
    for (uint32_t i = (uint32_t)(h >> 32) & (INDEX_SLOTS - 1);; i = (i + 1) & (INDEX_SLOTS - 1)) {
        if (slots[i].ptr == 0 || slots[i].ptr == p) {
            if (slots[i].ptr == p) free_records[free_count++] = slots[i].record;   // BUG guard: never freed
            else atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
            slots[i].ptr = p;
            slots[i].record = r;
            break;
        }
    }
    _Atomic uint8_t *c = &filter[(h >> 48) & (FILTER_SLOTS - 1)];
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    if (v < 255) atomic_store_explicit(c, v + 1, memory_order_relaxed);
}

// Called with the lock held: forgets `p`'s record, when it has one.
static void erase(uintptr_t p) {
    uint64_t h = hash(p);
    uint32_t i = (uint32_t)(h >> 32) & (INDEX_SLOTS - 1);
    while (slots[i].ptr != p) {
        if (slots[i].ptr == 0) return;
        i = (i + 1) & (INDEX_SLOTS - 1);
    }
    free_records[free_count++] = slots[i].record;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    // Backward-shift deletion: every entry after the hole that could live in it moves up, so a
    // probe never meets a gap before its key (no tombstones).
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & (INDEX_SLOTS - 1); slots[j].ptr != 0; j = (j + 1) & (INDEX_SLOTS - 1)) {
        uint32_t home = (uint32_t)(hash(slots[j].ptr) >> 32) & (INDEX_SLOTS - 1);
        // Move j into the hole unless its home lies cyclically in (hole, j].
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole].ptr = 0;
    _Atomic uint8_t *c = &filter[(h >> 48) & (FILTER_SLOTS - 1)];
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
    insert((uintptr_t)p, size, frames + first, depth);
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
    uint64_t h = hash((uintptr_t)p);
    if (atomic_load_explicit(&filter[(h >> 48) & (FILTER_SLOTS - 1)], memory_order_relaxed) == 0) return;
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
    if (atomic_load_explicit(&tables, memory_order_acquire) == NULL) {
        lock();
        if (atomic_load_explicit(&tables, memory_order_relaxed) == NULL) {
            size_t bytes = sizeof(chbone_heap_sample) * RECORDS + sizeof(uint32_t) * RECORDS + sizeof(index_slot) * INDEX_SLOTS;
            // Pages are touched as records are used: a few hundred live samples cost a few
            // hundred KiB, not the 9 MiB reserved.
            void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) {
                unlock();
                errno = ENOMEM;
                return -1;
            }
            records = m;
            free_records = (uint32_t *)(records + RECORDS);
            slots = (index_slot *)(free_records + RECORDS);
            atomic_store_explicit(&tables, m, memory_order_release);
        }
        unlock();
    }
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
    out->dropped = atomic_load(&dropped);
    out->interval = atomic_load(&mean_interval);
    out->active = atomic_load(&active);
}

int64_t chbone_heap_sampler_snapshot(chbone_heap_sample *out, int64_t max) {
    if (atomic_load_explicit(&tables, memory_order_acquire) == NULL) return 0;
    int64_t n = 0;
    lock();
    for (uint32_t i = 0; i < INDEX_SLOTS; i++) {
        if (slots[i].ptr == 0) continue;
        if (n < max) memcpy(&out[n], &records[slots[i].record], sizeof *out);
        n++;
    }
    unlock();
    return n;
}

#endif
