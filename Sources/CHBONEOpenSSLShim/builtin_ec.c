// OpenSSL 3.0 and 3.1 decode every certificate's public key through the provider decoder
// framework: about 100 µs per certificate here, two certificates per inbound handshake. Keys whose
// type has a default ENGINE take the built-in (pre-provider) EC method instead, which decodes the
// same key in a few microseconds and signs and verifies with the same EC code. This file registers
// an ENGINE that carries nothing but OpenSSL's own EC method; it needs the deprecated ENGINE API.
//
// The engine also carries a copy of OpenSSL's EC ASN.1 method whose public-key decoder takes the
// P-256 group from one prepared copy (EC_KEY_set_group duplicates it) instead of building the group
// from the curve's constants for every certificate: EC_GROUP_new_by_curve_name computes two
// Montgomery contexts, each with a modular inverse, about 8 µs per certificate and two certificates
// per inbound handshake. Other curves and explicit parameters go to OpenSSL's own decoder.
//
// X25519 key shares take OpenSSL's built-in X25519 method the same way: through the provider, each
// handshake's key generation, peer-key import and derivation fetched key-management and exchange
// methods and walked the whole algorithm-name map (EVP_PKEY_set_type_by_keymgmt), about 6 % of a
// server handshake here. The arithmetic (ossl_x25519, with its all-zero shared secret check) is the
// same code either way. libssl asks for X25519 "parameters" before importing the peer's share; the
// built-in method has no parameter generation, so ours sets the key type, which is all there is.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <pthread.h>
#include "CHBONEOpenSSLShim.h"

static EVP_PKEY_METHOD *ec_method;     // lives for the process, owned by the engine tables
static EVP_PKEY_METHOD *x25519_method; // the same
static EVP_PKEY_ASN1_METHOD *ec_asn1;  // lives for the process; NULL when the decoder detour is off
static const int ec_nids[] = { EVP_PKEY_EC };
static const int pkey_nids[] = { EVP_PKEY_EC, EVP_PKEY_X25519 };
static int installed;

typedef int (*pub_decode_fn)(EVP_PKEY *, const X509_PUBKEY *);
static pub_decode_fn builtin_pub_decode;
static EC_GROUP *p256;                 // the template every P-256 key's group is copied from

static int shared_group_pub_decode(EVP_PKEY *pkey, const X509_PUBKEY *pub) {
    const unsigned char *p = NULL;
    int len = 0, ptype = 0;
    const void *pval = NULL;
    X509_ALGOR *alg = NULL;
    if (!X509_PUBKEY_get0_param(NULL, &p, &len, &alg, pub)) return 0;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_X9_62_prime256v1) return builtin_pub_decode(pkey, pub);
    EC_KEY *key = EC_KEY_new();
    if (key == NULL) return 0;
    // o2i_ECPublicKey checks the point is on the curve, as OpenSSL's decoder does.
    if (!EC_KEY_set_group(key, p256) || o2i_ECPublicKey(&key, &p, len) == NULL || !EVP_PKEY_assign_EC_KEY(pkey, key)) {
        EC_KEY_free(key);
        return 0;
    }
    return 1;
}

static void sentinel_pub_decode_a(void) {}
static void sentinel_pub_decode_b(void) {}

// OpenSSL has setters for an ASN.1 method's functions but no getters, and its setter replaces six
// at once. The slot of pub_decode is found by setting it through the public setter on a scratch
// method and looking for the pointer: no layout is assumed that this check does not confirm.
static int pub_decode_slot(void) {
    int slot = -1;
    for (int round = 0; round < 2; round++) {
        void (*sentinel)(void) = round == 0 ? sentinel_pub_decode_a : sentinel_pub_decode_b;
        EVP_PKEY_ASN1_METHOD *probe = EVP_PKEY_asn1_new(EVP_PKEY_EC, 0, "hbone-probe", "hbone-probe");
        if (probe == NULL) return -1;
        EVP_PKEY_asn1_set_public(probe, (pub_decode_fn)(void *)sentinel, NULL, NULL, NULL, NULL, NULL);
        void *const *words = (void *const *)probe;
        int found = -1, matches = 0;
        for (int i = 0; i < 12; i++) {
            if (words[i] == (void *)sentinel) { found = i; matches++; }
        }
        EVP_PKEY_asn1_free(probe);
        if (matches != 1 || (slot != -1 && found != slot)) return -1;
        slot = found;
    }
    return slot;
}

static int asn1_methods(ENGINE *e, EVP_PKEY_ASN1_METHOD **method, const int **nids, int nid) {
    (void)e;
    if (method == NULL) {
        *nids = ec_nids;
        return 1;
    }
    *method = nid == EVP_PKEY_EC ? ec_asn1 : NULL;
    return *method != NULL;
}

// A copy of OpenSSL's EC ASN.1 method with the shared-group decoder, or NULL (then OpenSSL's stays).
static EVP_PKEY_ASN1_METHOD *shared_group_asn1_method(void) {
    const EVP_PKEY_ASN1_METHOD *builtin = EVP_PKEY_asn1_find(NULL, EVP_PKEY_EC);
    int slot = pub_decode_slot();
    if (builtin == NULL || slot < 0) return NULL;
    pub_decode_fn original = ((pub_decode_fn const *)(const void *)builtin)[slot];
    int id = 0, base = 0, flags = 0;
    const char *info = NULL, *pem = NULL;
    if (original == NULL || !EVP_PKEY_asn1_get0_info(&id, &base, &flags, &info, &pem, builtin) || id != EVP_PKEY_EC) return NULL;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY_ASN1_METHOD *method = EVP_PKEY_asn1_new(EVP_PKEY_EC, flags, pem, info);
    if (group == NULL || method == NULL) {
        EC_GROUP_free(group);
        EVP_PKEY_asn1_free(method);
        return NULL;
    }
    EVP_PKEY_asn1_copy(method, builtin);
    ((pub_decode_fn *)(void *)method)[slot] = shared_group_pub_decode;
    builtin_pub_decode = original;
    p256 = group;
    return method;
}

static int x25519_paramgen(EVP_PKEY_CTX *ctx, EVP_PKEY *pkey) {
    (void)ctx;
    return EVP_PKEY_set_type(pkey, EVP_PKEY_X25519);
}

static EVP_PKEY_METHOD *builtin_x25519_method(void) {
    const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_X25519);
    if (builtin == NULL) return NULL;
    EVP_PKEY_METHOD *method = EVP_PKEY_meth_new(EVP_PKEY_X25519, 0);
    if (method == NULL) return NULL;
    EVP_PKEY_meth_copy(method, builtin);
    EVP_PKEY_meth_set_paramgen(method, NULL, x25519_paramgen);
    return method;
}

static int pkey_methods(ENGINE *e, EVP_PKEY_METHOD **method, const int **nids, int nid) {
    (void)e;
    if (method == NULL) {
        *nids = x25519_method != NULL ? pkey_nids : ec_nids;
        return x25519_method != NULL ? 2 : 1;
    }
    *method = nid == EVP_PKEY_EC ? ec_method : nid == EVP_PKEY_X25519 ? x25519_method : NULL;
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
    ec_asn1 = shared_group_asn1_method();
    x25519_method = builtin_x25519_method();
    ENGINE *e = ENGINE_new();
    if (e == NULL) goto fail;
    if (!ENGINE_set_id(e, "hbone-builtin-ec") || !ENGINE_set_name(e, "OpenSSL built-in EC key method")
        || !ENGINE_set_pkey_meths(e, pkey_methods) || (ec_asn1 != NULL && !ENGINE_set_pkey_asn1_meths(e, asn1_methods))
        || !ENGINE_init(e)) {
        ENGINE_free(e);
        goto fail;
    }
    if (!ENGINE_set_default_pkey_meths(e) || (ec_asn1 != NULL && !ENGINE_set_default_pkey_asn1_meths(e))) {
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
    EVP_PKEY_meth_free(x25519_method);
    x25519_method = NULL;
    EVP_PKEY_asn1_free(ec_asn1);
    ec_asn1 = NULL;
    EC_GROUP_free(p256);
    p256 = NULL;
    ERR_clear_error();
}

int chbone_ec_shared_group_decoder(void) { return installed && ec_asn1 != NULL; }
int chbone_builtin_x25519(void) { return installed && x25519_method != NULL; }

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

// A P-256 private key (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY" DER) decoded straight into a
// built-in EC key: OpenSSL 3.0's provider decoders took about 600 µs per key here (every SVID read
// from disk, every CA key), this takes a few. Anything else (another curve or algorithm, explicit
// parameters, a malformed key) returns NULL and the caller decodes it the general way, except a
// P-256 key whose public point is not d·G (`*inconsistent` = 1), which no decoder should accept.
EVP_PKEY *chbone_decode_p256_private_key(const unsigned char *der, long length, int pkcs8, int *inconsistent) {
    *inconsistent = 0;
    if (!installed || p256 == NULL || der == NULL || length <= 0) return NULL;
    PKCS8_PRIV_KEY_INFO *info = NULL;
    const unsigned char *inner = der;
    long innerLength = length;
    if (pkcs8) {
        const unsigned char *p = der;
        info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, length);
        const ASN1_OBJECT *algorithm = NULL;
        const X509_ALGOR *algor = NULL;
        int pklen = 0, ptype = 0;
        const void *pval = NULL;
        if (info == NULL || !PKCS8_pkey_get0(&algorithm, &inner, &pklen, &algor, info)
            || OBJ_obj2nid(algorithm) != NID_X9_62_id_ecPublicKey) goto fallback;
        X509_ALGOR_get0(NULL, &ptype, &pval, algor);
        if (ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_X9_62_prime256v1) goto fallback;
        innerLength = pklen;
    }
    EC_KEY *key = EC_KEY_new();
    if (key == NULL || !EC_KEY_set_group(key, p256)) { EC_KEY_free(key); goto fallback; }
    const unsigned char *q = inner;
    // Parameters inside the key replace the group: it must still be P-256. The public point is
    // computed when the key leaves it out; EC_KEY_check_key then proves the scalar is in range and
    // the point is d·G on the curve (the general decoder checks neither).
    if (d2i_ECPrivateKey(&key, &q, innerLength) == NULL) { EC_KEY_free(key); goto fallback; }
    if (EC_GROUP_get_curve_name(EC_KEY_get0_group(key)) != NID_X9_62_prime256v1) { EC_KEY_free(key); goto fallback; }
    if (EC_KEY_get0_public_key(key) == NULL || !EC_KEY_check_key(key)) {
        // A P-256 key whose point is not its scalar's: it would sign with one key and claim another.
        *inconsistent = 1;
        EC_KEY_free(key);
        goto fallback;
    }
    EVP_PKEY *out = EVP_PKEY_new();
    if (out == NULL || !EVP_PKEY_assign_EC_KEY(out, key)) {
        EVP_PKEY_free(out);
        EC_KEY_free(key);
        goto fallback;
    }
    PKCS8_PRIV_KEY_INFO_free(info);
    return out;
fallback:
    PKCS8_PRIV_KEY_INFO_free(info);
    ERR_clear_error();
    return NULL;
}

int chbone_pkey_pairwise_check(EVP_PKEY *pkey) {
    int ok;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        // Whichever kind of EC key it is (provider or built-in method, see above), the EC_KEY view
        // answers: the point is on the curve, of the group's order, and d·G.
        const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
        ok = ec != NULL && EC_KEY_check_key(ec) == 1 ? 1 : 0;
    } else {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int r = ctx != NULL ? EVP_PKEY_pairwise_check(ctx) : -1;
        EVP_PKEY_CTX_free(ctx);
        ok = r == 1 ? 1 : r == 0 ? 0 : -1;
    }
    ERR_clear_error();
    return ok;
}
