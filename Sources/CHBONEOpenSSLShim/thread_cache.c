// OpenSSL allocates about 1,800 times per server handshake and, with SSL_MODE_RELEASE_BUFFERS,
// takes and frees a ~17 KiB record buffer for nearly every record it reads or writes. glibc keeps
// only 7 freed chunks per size class per thread (its tcache) and none of record-buffer size, so
// most of those calls reach the shared heap: 20 of the 22 mallocs of a 1 KiB round trip over TLS
// were OpenSSL's. This file gives OpenSSL a per-thread cache of freed blocks by size class,
// installed with CRYPTO_set_mem_functions before OpenSSL allocates anything (a constructor).
// One event loop is one thread, so the cache is the loop's pool of record buffers; it is bounded
// (CACHE_BYTES per thread) and a loop that stops allocating gives it back (chbone_alloc_tick).
// A block's class is read back from glibc's own chunk size (malloc_usable_size), so blocks carry
// no header and cost the heap what plain malloc would: the small classes are the sizes glibc
// rounds requests to. Any thread may free a block another thread allocated (it joins the freeing
// thread's cache).
// Sanitizer builds keep the system allocator so ASan and TSan still see every OpenSSL block.
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include "CHBONEOpenSSLShim.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CHBONE_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHBONE_SANITIZED 1
#endif

// Small classes are the usable sizes glibc itself hands out (16k + 24 bytes, up to 8 KiB), so a
// cached block costs the heap what plain malloc would for the same request; large classes
// (record buffers) are 4 KiB apart, up to 64 KiB.
#define SMALL_BASE 24
#define SMALL_STEP 16
#define SMALL_CLASSES 511               // 24 B … 8184 B
#define SMALL_MAX (SMALL_BASE + (SMALL_CLASSES - 1) * SMALL_STEP)
#define LARGE_BASE 8192
#define LARGE_STEP 4096
#define LARGE_CLASSES 14                // 12 KiB … 64 KiB
#define LARGE_MAX (LARGE_BASE + LARGE_CLASSES * LARGE_STEP)
#define CLASSES (SMALL_CLASSES + LARGE_CLASSES)
#define GLIBC_SLACK 31                  // glibc may hand out up to MINSIZE - 1 more than asked
#define UNCACHED 0xffffu
#define CACHE_BYTES (1u << 20)          // per thread
#define SMALL_DEPTH 128
#define LARGE_DEPTH 16

typedef struct block { struct block *next; } block;

typedef struct cache {
    block *head[CLASSES];
    uint16_t count[CLASSES];
    size_t bytes;
    uint64_t served;        // allocations served from the cache (for chbone_alloc_tick)
    uint64_t served_at_tick;
    int registered;
} cache;

static __thread cache tc;
static pthread_key_t exit_key;
static int installed;

static inline size_t class_size(unsigned cls) {
    if (cls < SMALL_CLASSES) return SMALL_BASE + (size_t)cls * SMALL_STEP;
    return LARGE_BASE + (size_t)(cls - SMALL_CLASSES + 1) * LARGE_STEP;
}

/// The class a request of n bytes is served from (the smallest that holds it).
static inline unsigned class_for_request(size_t n) {
    if (n <= SMALL_BASE) return 0;
    if (n <= SMALL_MAX) return (unsigned)((n - SMALL_BASE + SMALL_STEP - 1) / SMALL_STEP);
    if (n <= LARGE_BASE + LARGE_STEP) return SMALL_CLASSES;
    if (n <= LARGE_MAX) return SMALL_CLASSES + (unsigned)((n - LARGE_BASE - 1) / LARGE_STEP);
    return UNCACHED;
}

/// The class of a block whose usable size is `usable`: the largest class it holds (its own, or a
/// larger one when glibc gave a chunk with an unsplittable remainder).
static inline unsigned class_for_block(size_t usable) {
    if (usable < SMALL_BASE) return UNCACHED;
    if (usable < LARGE_BASE + LARGE_STEP) {
        size_t n = usable < SMALL_MAX ? usable : SMALL_MAX;
        return (unsigned)((n - SMALL_BASE) / SMALL_STEP);
    }
    // Larger than the largest class (plus glibc's slack): a block of any size, never cached, or
    // the cache's byte bound (which counts class sizes) would not hold.
    if (usable > LARGE_MAX + GLIBC_SLACK) return UNCACHED;
    size_t n = usable < LARGE_MAX ? usable : LARGE_MAX;
    return SMALL_CLASSES + (unsigned)((n - LARGE_BASE) / LARGE_STEP) - 1;
}

static inline unsigned depth(unsigned cls) { return cls < SMALL_CLASSES ? SMALL_DEPTH : LARGE_DEPTH; }

static void flush(cache *c) {
    for (unsigned i = 0; i < CLASSES; i++) {
        block *b = c->head[i];
        while (b) {
            block *next = b->next;
            free(b);
            b = next;
        }
        c->head[i] = NULL;
        c->count[i] = 0;
    }
    c->bytes = 0;
}

static void thread_exit(void *unused) {
    (void)unused;
    flush(&tc);
    // Other destructors (OpenSSL's own thread state) may free blocks after this one ran: the next
    // kept block registers again, and glibc calls this destructor once more.
    tc.registered = 0;
}

static void *cached_malloc(size_t n, const char *file, int line) {
    (void)file; (void)line;
    unsigned cls = class_for_request(n);
    if (cls == UNCACHED) return malloc(n);
    block *b = tc.head[cls];
    if (b) {
        tc.head[cls] = b->next;
        tc.count[cls]--;
        tc.bytes -= class_size(cls);
        tc.served++;
        return b;
    }
    return malloc(class_size(cls));
}

static void cached_free(void *p, const char *file, int line) {
    (void)file; (void)line;
    if (p == NULL) return;
    unsigned cls = class_for_block(malloc_usable_size(p));
    if (cls != UNCACHED && tc.count[cls] < depth(cls) && tc.bytes + class_size(cls) <= CACHE_BYTES) {
        if (!tc.registered) {
            // The first block this thread keeps: have the thread's exit hand the cache back.
            tc.registered = 1;
            pthread_setspecific(exit_key, &tc);
        }
        block *b = p;
        b->next = tc.head[cls];
        tc.head[cls] = b;
        tc.count[cls]++;
        tc.bytes += class_size(cls);
        return;
    }
    free(p);
}

static void *cached_realloc(void *p, size_t n, const char *file, int line) {
    if (p == NULL) return cached_malloc(n, file, line);
    size_t usable = malloc_usable_size(p);
    unsigned old = class_for_block(usable), want = class_for_request(n);
    if (old == UNCACHED && want == UNCACHED) return realloc(p, n);
    if (old != UNCACHED && n <= class_size(old) && want == old) return p;
    void *q = cached_malloc(n, file, line);
    if (q == NULL) return NULL;
    memcpy(q, p, n < usable ? n : usable);
    cached_free(p, file, line);
    return q;
}

__attribute__((constructor)) static void install(void) {
#ifndef CHBONE_SANITIZED
    const char *choice = getenv("HBONE_OPENSSL_MALLOC");
    if (choice == NULL || strcmp(choice, "system") != 0) {
        if (pthread_key_create(&exit_key, thread_exit) == 0)
            installed = CRYPTO_set_mem_functions(cached_malloc, cached_realloc, cached_free) == 1;
    }
#endif
    // No OpenSSL clean-up at exit: it frees the ENGINE tables and their lock while threads that
    // are still tearing down free keys holding an ENGINE reference (certificates' EC keys take the
    // built-in method's engine, builtin_ec.c), which read the freed lock. The kernel takes the
    // memory back at exit anyway. Only the first initialisation can say so: here, after the
    // allocator is set, before anything else uses OpenSSL.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

int chbone_alloc_thread_cache_installed(void) { return installed; }

size_t chbone_alloc_thread_cache_bytes(void) { return tc.bytes; }

void chbone_alloc_tick(void) {
    if (!installed) return;
    // Nothing served since the last tick: the loop is idle, so its cache goes back to the heap.
    if (tc.served == tc.served_at_tick && tc.bytes > 0) flush(&tc);
    tc.served_at_tick = tc.served;
}

void chbone_alloc_flush(void) {
    if (installed) flush(&tc);
}

int chbone_alloc_self_check(void) {
    int failures = 0;
    for (size_t n = 0; n <= LARGE_MAX + LARGE_STEP; n++) {
        unsigned cls = class_for_request(n);
        if (cls == UNCACHED) {
            failures += n <= LARGE_MAX;
            continue;
        }
        if (cls >= CLASSES || class_size(cls) < n) { failures++; continue; }
        // The smallest class that holds n, found again from the block glibc returns for it.
        if (cls > 0 && cls < SMALL_CLASSES && class_size(cls - 1) >= n) failures++;
        void *p = malloc(class_size(cls));
        if (p == NULL) return -1;
        size_t usable = malloc_usable_size(p);
        // Freed, the block files under a class it holds: its own, or a larger one when glibc
        // handed out a chunk with a remainder too small to split (less than 32 bytes more).
        unsigned back = class_for_block(usable);
        failures += back == UNCACHED || back < cls || class_size(back) > usable;
        // Small classes ask glibc for what it would give the same request anyway.
        failures += cls < SMALL_CLASSES && usable - class_size(cls) > GLIBC_SLACK;
        free(p);
    }
    // Blocks beyond the largest class are never cached, whatever their size.
    for (size_t n = LARGE_MAX + 64; n <= 4 * LARGE_MAX; n += 4096) {
        void *p = malloc(n);
        if (p == NULL) return -1;
        failures += class_for_block(malloc_usable_size(p)) != UNCACHED;
        free(p);
    }
    return failures;
}
