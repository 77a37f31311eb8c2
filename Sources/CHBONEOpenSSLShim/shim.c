#include "CHBONEOpenSSLShim.h"
#include <string.h>

int chbone_ssl_ctx_set_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
}
long chbone_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
int chbone_ssl_ctx_set_min_tls12(SSL_CTX *ctx) { return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
int chbone_ssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
int chbone_req_add_extension(X509_REQ *req, X509_EXTENSION *ext) {
    /* The stack holds a borrowed pointer; the caller still owns and frees ext. */
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (exts == NULL || !sk_X509_EXTENSION_push(exts, ext)) { sk_X509_EXTENSION_free(exts); return 0; }
    int ok = X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_free(exts);
    return ok;
}
long chbone_ssl_ctx_disable_session_cache(SSL_CTX *ctx) { return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); }
int chbone_ssl_ctx_set1_groups_list(SSL_CTX *ctx, const char *list) { return (int)SSL_CTX_set1_groups_list(ctx, list); }
int chbone_ssl_ctx_add_extra_chain_cert(SSL_CTX *ctx, X509 *x509) { return (int)SSL_CTX_add_extra_chain_cert(ctx, x509); }
int chbone_ssl_get_ex_new_index(void) { return SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }
uint64_t chbone_ssl_op_no_ticket(void) { return SSL_OP_NO_TICKET; }
uint64_t chbone_ssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
long chbone_ssl_mode_release_buffers(void) { return SSL_MODE_RELEASE_BUFFERS; }
void chbone_bio_set_mem_eof_return(BIO *bio, int v) { BIO_set_mem_eof_return(bio, v); }
long chbone_bio_get_mem_data(BIO *bio, char **out) { return BIO_get_mem_data(bio, out); }
size_t chbone_bio_mem_capacity(BIO *bio) {
    BUF_MEM *bm = NULL;
    BIO_get_mem_ptr(bio, &bm);
    return bm ? bm->max : 0;
}
void chbone_ssl_free_peer_chains(SSL *ssl) {
    X509 *x;
    STACK_OF(X509) *presented = SSL_get_peer_cert_chain(ssl);
    if (presented) while ((x = sk_X509_pop(presented)) != NULL) X509_free(x);
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    if (verified) while ((x = sk_X509_pop(verified)) != NULL) X509_free(x);
}
int chbone_sk_general_name_num(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }
GENERAL_NAME *chbone_sk_general_name_value(const GENERAL_NAMES *names, int i) { return sk_GENERAL_NAME_value(names, i); }
int chbone_sk_x509_num(const STACK_OF(X509) *chain) { return sk_X509_num(chain); }
X509 *chbone_sk_x509_value(const STACK_OF(X509) *chain, int i) { return sk_X509_value(chain, i); }
STACK_OF(X509) *chbone_sk_x509_new_null(void) { return sk_X509_new_null(); }
int chbone_sk_x509_push(STACK_OF(X509) *chain, X509 *cert) { return sk_X509_push(chain, cert); }
void chbone_sk_x509_pop_free(STACK_OF(X509) *chain) { sk_X509_pop_free(chain, X509_free); }
void chbone_openssl_free(void *p) { OPENSSL_free(p); }

static const unsigned char alpn_h2[] = { 2, 'h', '2' };

int chbone_ssl_ctx_set_alpn_h2(SSL_CTX *ctx) { return SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof alpn_h2); }

// The server accepts only "h2": anything else fails the handshake with no_application_protocol.
// `out` points into the client's list, which outlives the callback (OpenSSL's contract).
static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, alpn_h2, sizeof alpn_h2, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void chbone_ssl_ctx_select_alpn_h2(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL); }
unsigned long chbone_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }

EVP_PKEY *chbone_ec_gen(const char *curve) { return EVP_EC_gen(curve); }
EVP_PKEY *chbone_rsa_gen(unsigned int bits) { return EVP_RSA_gen(bits); }

int chbone_x509_crl_revoked_count(const X509_CRL *crl) {
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED((X509_CRL *)crl);
    return revoked == NULL ? 0 : sk_X509_REVOKED_num(revoked);
}
