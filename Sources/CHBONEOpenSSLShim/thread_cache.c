// OpenSSL allocates about 1,800 times per server handshake and, with SSL_MODE_RELEASE_BUFFERS,
// takes and frees a ~17 KiB record buffer for nearly every record it reads or writes. glibc keeps
// only 7 freed chunks per size class per thread (its tcache) and none of record-buffer size, so
// most of those calls reach the shared heap: 20 of the 22 mallocs of a 1 KiB round trip over TLS
// were OpenSSL's. This file gives OpenSSL a per-thread cache of freed blocks by size class,
// installed with CRYPTO_set_mem_functions before OpenSSL allocates anything (a constructor).
// One event loop is one thread, so the cache is the loop's pool of record buffers; it is bounded
// (CACHE_BYTES per thread) and a loop that stops allocating gives it back (chbone_alloc_tick).
// Each block carries a 16-byte header with its class, so free needs no size and any thread may
// free a block another thread allocated (it joins the freeing thread's cache).
// Sanitizer builds keep the system allocator so ASan and TSan still see every OpenSSL block.
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
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

#define HEADER 16
#define SMALL_STEP 32
#define SMALL_CLASSES 32                // 32 B … 1 KiB
#define LARGE_STEP 4096
#define LARGE_CLASSES 16                // 4 KiB … 64 KiB
#define CLASSES (SMALL_CLASSES + LARGE_CLASSES)
#define UNCACHED 0xffffu
#define MAGIC 0x6862u                   // "hb": a block of ours (checked in debug builds)
#define CACHE_BYTES (1u << 20)          // per thread
#define SMALL_DEPTH 256
#define LARGE_DEPTH 16

typedef struct header {
    uint16_t cls;      // size class, or UNCACHED
    uint16_t magic;
    uint32_t unused;
    size_t size;       // usable bytes after the header
} header;

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
    return cls < SMALL_CLASSES ? (size_t)(cls + 1) * SMALL_STEP : (size_t)(cls - SMALL_CLASSES + 1) * LARGE_STEP;
}

static inline unsigned class_of(size_t n) {
    if (n <= SMALL_CLASSES * SMALL_STEP) return n == 0 ? 0 : (unsigned)((n - 1) / SMALL_STEP);
    if (n <= (size_t)LARGE_CLASSES * LARGE_STEP) return SMALL_CLASSES + (unsigned)((n - 1) / LARGE_STEP);
    return UNCACHED;
}

static inline unsigned depth(unsigned cls) { return cls < SMALL_CLASSES ? SMALL_DEPTH : LARGE_DEPTH; }

static void flush(cache *c) {
    for (unsigned i = 0; i < CLASSES; i++) {
        block *b = c->head[i];
        while (b) {
            block *next = b->next;
            free((char *)b - HEADER);
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
}

static void *cached_malloc(size_t n, const char *file, int line) {
    (void)file; (void)line;
    unsigned cls = class_of(n);
    if (cls != UNCACHED) {
        block *b = tc.head[cls];
        if (b) {
            tc.head[cls] = b->next;
            tc.count[cls]--;
            tc.bytes -= class_size(cls);
            tc.served++;
            return b;
        }
    }
    size_t size = cls == UNCACHED ? n : class_size(cls);
    header *h = malloc(HEADER + size);
    if (h == NULL) return NULL;
    h->cls = (uint16_t)cls;
    h->magic = MAGIC;
    h->size = size;
    return (char *)h + HEADER;
}

static void cached_free(void *p, const char *file, int line) {
    (void)file; (void)line;
    if (p == NULL) return;
    header *h = (header *)((char *)p - HEADER);
    unsigned cls = h->cls;
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
    free(h);
}

static void *cached_realloc(void *p, size_t n, const char *file, int line) {
    if (p == NULL) return cached_malloc(n, file, line);
    header *h = (header *)((char *)p - HEADER);
    if (n <= h->size && (h->cls != UNCACHED || n > h->size / 2)) return p;
    if (h->cls == UNCACHED && class_of(n) == UNCACHED) {
        header *g = realloc(h, HEADER + n);
        if (g == NULL) return NULL;
        g->size = n;
        return (char *)g + HEADER;
    }
    void *q = cached_malloc(n, file, line);
    if (q == NULL) return NULL;
    memcpy(q, p, n < h->size ? n : h->size);
    cached_free(p, file, line);
    return q;
}

__attribute__((constructor)) static void install(void) {
#ifndef CHBONE_SANITIZED
    const char *choice = getenv("HBONE_OPENSSL_MALLOC");
    if (choice != NULL && strcmp(choice, "system") == 0) return;
    if (pthread_key_create(&exit_key, thread_exit) != 0) return;
    installed = CRYPTO_set_mem_functions(cached_malloc, cached_realloc, cached_free) == 1;
#endif
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
