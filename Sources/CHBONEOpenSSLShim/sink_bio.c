// The engine's outgoing ciphertext goes into this write-only BIO instead of a memory BIO. A memory
// BIO grows with BUF_MEM_grow_clean (a new block, a copy and a cleanse of the old one at every
// growth step of a third), zeroes the newly used part before each write, and zeroes its whole
// capacity on every reset: with 512 KiB of frames produced per pass (eight busy streams), that was
// more CPU than the encryption, and the freed blocks made glibc trim and fault its heap back in.
// Ciphertext needs none of that cleansing. Here the buffer doubles, is emptied by setting its length
// to 0, and shrinks only when asked (chbone_sink_bio_trim, at quiet moments).
#include <openssl/bio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "CHBONEOpenSSLShim.h"

typedef struct sink {
    unsigned char *data;
    size_t length;
    size_t capacity;
} sink;

static BIO_METHOD *sink_method;

static int sink_write(BIO *bio, const char *in, size_t n, size_t *written) {
    sink *s = BIO_get_data(bio);
    if (s == NULL || in == NULL) return 0;
    if (n > s->capacity - s->length) {
        if (n > SIZE_MAX / 2 - s->length) return 0;
        size_t capacity = s->capacity ? s->capacity : 4096;
        while (capacity < s->length + n) capacity *= 2;
        unsigned char *data = realloc(s->data, capacity);
        if (data == NULL) return 0;
        s->data = data;
        s->capacity = capacity;
    }
    memcpy(s->data + s->length, in, n);
    s->length += n;
    *written = n;
    return 1;
}

static long sink_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num; (void)ptr;
    sink *s = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;                     // libssl flushes after each flight
    case BIO_CTRL_WPENDING: return s ? (long)s->length : 0;
    case BIO_CTRL_PENDING: return 0;                   // nothing to read back
    case BIO_CTRL_RESET:
        if (s) s->length = 0;
        return 1;
    default: return 0;                                 // no kTLS, no dgram, no chaining
    }
}

static int sink_create(BIO *bio) {
    sink *s = calloc(1, sizeof *s);
    if (s == NULL) return 0;
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    return 1;
}

static int sink_destroy(BIO *bio) {
    sink *s = BIO_get_data(bio);
    if (s) {
        free(s->data);
        free(s);
    }
    BIO_set_data(bio, NULL);
    return 1;
}

static void make_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hbone ciphertext sink");
    if (m == NULL) return;
    if (!BIO_meth_set_write_ex(m, sink_write) || !BIO_meth_set_ctrl(m, sink_ctrl)
        || !BIO_meth_set_create(m, sink_create) || !BIO_meth_set_destroy(m, sink_destroy)) {
        BIO_meth_free(m);
        return;
    }
    sink_method = m;   // lives for the process
}

BIO *chbone_sink_bio_new(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_method);
    return sink_method ? BIO_new(sink_method) : NULL;
}

size_t chbone_sink_bio_data(BIO *bio, const unsigned char **data) {
    sink *s = BIO_get_data(bio);
    *data = s ? s->data : NULL;
    return s ? s->length : 0;
}

void chbone_sink_bio_clear(BIO *bio) {
    sink *s = BIO_get_data(bio);
    if (s) s->length = 0;
}

size_t chbone_sink_bio_capacity(BIO *bio) {
    sink *s = BIO_get_data(bio);
    return s ? s->capacity : 0;
}

void chbone_sink_bio_trim(BIO *bio) {
    sink *s = BIO_get_data(bio);
    if (s == NULL) return;
    if (s->length == 0) {
        free(s->data);
        s->data = NULL;
        s->capacity = 0;
    } else if (s->capacity > 2 * s->length + 4096) {
        // Unsent bytes stay; the room a past burst left around them goes.
        unsigned char *data = realloc(s->data, s->length);
        if (data != NULL) {
            s->data = data;
            s->capacity = s->length;
        }
    }
}
