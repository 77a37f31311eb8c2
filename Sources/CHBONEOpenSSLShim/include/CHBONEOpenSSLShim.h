#ifndef CHBONE_OPENSSL_SHIM_H
#define CHBONE_OPENSSL_SHIM_H
// OpenSSL macros Swift cannot import, as functions. Only HBONETLS imports this module.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

int chbone_ssl_ctx_set_tls13_only(SSL_CTX *ctx);
long chbone_ssl_ctx_set_mode(SSL_CTX *ctx, long mode);
int chbone_ssl_ctx_set_min_tls12(SSL_CTX *ctx);
int chbone_ssl_set_sni(SSL *ssl, const char *name);
int chbone_req_add_extension(X509_REQ *req, X509_EXTENSION *ext); // ext stays the caller's
long chbone_ssl_ctx_disable_session_cache(SSL_CTX *ctx);
int chbone_ssl_ctx_set1_groups_list(SSL_CTX *ctx, const char *list);
int chbone_ssl_ctx_add_extra_chain_cert(SSL_CTX *ctx, X509 *x509); // takes ownership
int chbone_ssl_get_ex_new_index(void);
uint64_t chbone_ssl_op_no_ticket(void);
uint64_t chbone_ssl_op_no_renegotiation(void);
long chbone_ssl_mode_release_buffers(void);
void chbone_bio_set_mem_eof_return(BIO *bio, int v);
long chbone_bio_get_mem_data(BIO *bio, char **out);
/// Routes EC keys through OpenSSL's built-in EC method on OpenSSL 3.0/3.1 (see builtin_ec.c).
/// Process-wide, once; returns 1 when in effect.
int chbone_use_builtin_ec_key_method(void);
/// 1 when certificates' P-256 keys are decoded with the shared group (see builtin_ec.c).
int chbone_ec_shared_group_decoder(void);
/// 1 when X25519 key shares take OpenSSL's built-in X25519 method (see builtin_ec.c).
int chbone_builtin_x25519(void);
/// With the built-in EC method in effect: a new EVP_PKEY of that kind holding `pkey`'s EC key
/// (the caller owns it), or NULL when nothing needs converting.
EVP_PKEY *chbone_pkey_to_builtin_ec(EVP_PKEY *pkey);
/// With the built-in EC method in effect: a P-256 private key decoded from PKCS#8 (`pkcs8` 1) or
/// SEC1 DER into a key of that kind, range- and point-checked; NULL for anything else (decode it
/// the general way), with `*inconsistent` = 1 for a P-256 key whose public point is not its
/// scalar's (refuse it). The caller owns the result.
EVP_PKEY *chbone_decode_p256_private_key(const unsigned char *der, long length, int pkcs8, int *inconsistent);
/// Starts (on = 1) or stops digesting each Certificate handshake message `ssl` receives
/// (peer_certificate.c); the message callback also runs for every record, so stop it after the handshake.
void chbone_ssl_capture_peer_certificates(SSL *ssl, int on);
/// The SHA-256 of the Certificate message `ssl` received last on this thread, taken once: 1 and
/// `out` filled, or 0 when none was captured for `ssl`.
int chbone_ssl_take_peer_certificates_digest(const SSL *ssl, unsigned char out[32]);
/// A write-only BIO that collects what is written into one growing buffer (sink_bio.c): the
/// engine's outgoing ciphertext. NULL when it cannot be made.
BIO *chbone_sink_bio_new(void);
/// The collected bytes (borrowed until the next write or clear) and their count.
size_t chbone_sink_bio_data(BIO *bio, const unsigned char **data);
/// Empties it, keeping the buffer.
void chbone_sink_bio_clear(BIO *bio);
/// Bytes its buffer holds allocated.
size_t chbone_sink_bio_capacity(BIO *bio);
/// Frees the buffer when nothing is in it, or shrinks it to what it holds.
void chbone_sink_bio_trim(BIO *bio);
/// Bytes a memory BIO has allocated (its buffer grows to the largest burst and never shrinks).
size_t chbone_bio_mem_capacity(BIO *bio);
/// Frees the peer's certificates that `ssl` keeps after the handshake (the presented chain and
/// the verified chain); the leaf stays in the session. For after verification only: nothing in a
/// TLS 1.3 connection without resumption or post-handshake auth reads them again.
void chbone_ssl_free_peer_chains(SSL *ssl);
int chbone_sk_general_name_num(const GENERAL_NAMES *names);
GENERAL_NAME *chbone_sk_general_name_value(const GENERAL_NAMES *names, int i);
int chbone_sk_x509_num(const STACK_OF(X509) *chain);
X509 *chbone_sk_x509_value(const STACK_OF(X509) *chain, int i);
STACK_OF(X509) *chbone_sk_x509_new_null(void);
int chbone_sk_x509_push(STACK_OF(X509) *chain, X509 *cert);
void chbone_sk_x509_pop_free(STACK_OF(X509) *chain);
/// How many certificates a CRL revokes (sk_X509_REVOKED_num is a macro).
int chbone_x509_crl_revoked_count(const X509_CRL *crl);
void chbone_openssl_free(void *p);
/// Whether `pkey`'s public half belongs to its private half: 1 yes, 0 no, -1 cannot tell (a key
/// type without such a check, or no memory).
int chbone_pkey_pairwise_check(EVP_PKEY *pkey);
int chbone_ssl_ctx_set_alpn_h2(SSL_CTX *ctx);
void chbone_ssl_ctx_select_alpn_h2(SSL_CTX *ctx);
unsigned long chbone_xn_flag_rfc2253(void);
EVP_PKEY *chbone_ec_gen(const char *curve);
EVP_PKEY *chbone_rsa_gen(unsigned int bits);
/// OpenSSL's allocations go through a per-thread cache of freed blocks (thread_cache.c), installed
/// before OpenSSL's first allocation unless HBONE_OPENSSL_MALLOC=system or a sanitizer build.
int chbone_alloc_thread_cache_installed(void);
/// Bytes the calling thread's cache holds.
size_t chbone_alloc_thread_cache_bytes(void);
/// Called by each event loop about once a second: a cache that served nothing since the last call
/// is given back to the heap.
void chbone_alloc_tick(void);
/// Gives the calling thread's cache back to the heap now.
void chbone_alloc_flush(void);
/// Checks the size classes against glibc for every request size up to the largest class: each
/// request gets the smallest class that holds it, a freed block files under a class it holds, and
/// small classes ask glibc for what it would give the request anyway. Returns the failures.
int chbone_alloc_self_check(void);
#endif
