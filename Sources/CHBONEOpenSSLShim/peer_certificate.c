// The verified-chain cache keys on the SHA-256 of the peer's Certificate handshake message exactly as
// it arrived: OpenSSL parsed its certificates from these bytes, so equal bytes mean an equal chain.
// Re-encoding each parsed certificate to hash it (X509_digest) cost an i2d, a provider fetch and a
// digest context per certificate. The message is seen through the SSL's message callback, which runs
// on the loop's thread inside the same SSL_do_handshake call as the verification that consumes it.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <string.h>
#include "CHBONEOpenSSLShim.h"

// Per thread: the SSL whose Certificate message was seen last and that message's digest. Only a
// pointer compare, never dereferenced; taking it clears it.
static __thread const SSL *captured_ssl;
static __thread unsigned char captured_digest[SHA256_DIGEST_LENGTH];

static void capture(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg) {
    (void)version; (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 4) return;
    if (((const unsigned char *)buf)[0] != SSL3_MT_CERTIFICATE) return;
    // The low-level SHA-256 needs no provider fetch and no allocation.
    SHA256_CTX sha;
    SHA256_Init(&sha);
    SHA256_Update(&sha, buf, len);
    SHA256_Final(captured_digest, &sha);
    captured_ssl = ssl;
}

void chbone_ssl_capture_peer_certificates(SSL *ssl, int on) {
    SSL_set_msg_callback(ssl, on ? capture : NULL);
}

int chbone_ssl_take_peer_certificates_digest(const SSL *ssl, unsigned char out[32]) {
    if (ssl == NULL || captured_ssl != ssl) return 0;
    memcpy(out, captured_digest, SHA256_DIGEST_LENGTH);
    captured_ssl = NULL;
    return 1;
}
