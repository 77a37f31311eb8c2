// OpenSSL 3.0 and 3.1 decode every certificate's public key through the provider decoder
// framework: about 100 µs per certificate here, two certificates per inbound handshake. Keys whose
// type has a default ENGINE take the built-in (pre-provider) EC method instead, which decodes the
// same key in a few microseconds and signs and verifies with the same EC code. This file registers
// an ENGINE that carries nothing but OpenSSL's own EC method; it needs the deprecated ENGINE API.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include "CHBONEOpenSSLShim.h"

static EVP_PKEY_METHOD *ec_method;     // lives for the process, owned by the engine tables
static const int ec_nids[] = { EVP_PKEY_EC };
static int installed;

static int pkey_methods(ENGINE *e, EVP_PKEY_METHOD **method, const int **nids, int nid) {
    (void)e;
    if (method == NULL) {
        *nids = ec_nids;
        return 1;
    }
    *method = nid == EVP_PKEY_EC ? ec_method : NULL;
    return *method != NULL;
}

static void install(void) {
    // 3.2 reworked decoding; only the versions with the slow decoder get the detour.
    if (OpenSSL_version_num() >= 0x30200000L) return;
    const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_EC);
    if (builtin == NULL) return;
    ec_method = EVP_PKEY_meth_new(EVP_PKEY_EC, 0);
    if (ec_method == NULL) return;
    EVP_PKEY_meth_copy(ec_method, builtin);
    ENGINE *e = ENGINE_new();
    if (e == NULL) goto fail;
    if (!ENGINE_set_id(e, "hbone-builtin-ec") || !ENGINE_set_name(e, "OpenSSL built-in EC key method")
        || !ENGINE_set_pkey_meths(e, pkey_methods) || !ENGINE_init(e)) {
        ENGINE_free(e);
        goto fail;
    }
    if (!ENGINE_set_default_pkey_meths(e)) {
        ENGINE_finish(e);
        ENGINE_free(e);
        goto fail;
    }
    // The default-method table holds its own references; ours stay for the process lifetime.
    installed = 1;
    return;
fail:
    EVP_PKEY_meth_free(ec_method);
    ec_method = NULL;
    ERR_clear_error();
}

int chbone_use_builtin_ec_key_method(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    return installed;
}

EVP_PKEY *chbone_pkey_to_builtin_ec(EVP_PKEY *pkey) {
    // A key decoded from PEM is provider-native; signing it through the built-in method fails
    // ("command not supported"), so hand the built-in method a key of its own kind.
    if (!installed || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) return NULL;
    EC_KEY *ec = EVP_PKEY_get1_EC_KEY(pkey);
    if (ec == NULL) return NULL;
    EVP_PKEY *out = EVP_PKEY_new();
    if (out == NULL || !EVP_PKEY_assign_EC_KEY(out, ec)) {
        EVP_PKEY_free(out);
        EC_KEY_free(ec);
        ERR_clear_error();
        return NULL;
    }
    return out;
}
