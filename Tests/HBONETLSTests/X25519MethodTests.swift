import Testing
import COpenSSL
@testable import HBONETLS

/// X25519 key shares go through OpenSSL's built-in method on 3.0/3.1 (TLSLibrary.builtinX25519):
/// the exchange must agree with itself and still refuse a low-order peer share.
@Suite struct X25519MethodTests {
    func generate() throws -> OpaquePointer {
        TLSLibrary.prepare()
        let ctx = try #require(EVP_PKEY_CTX_new_from_name(nil, "X25519", nil))
        defer { EVP_PKEY_CTX_free(ctx) }
        #expect(EVP_PKEY_keygen_init(ctx) == 1)
        var key: OpaquePointer?
        #expect(EVP_PKEY_generate(ctx, &key) == 1)
        return try #require(key)
    }

    /// A peer key the way libssl builds one from a key share: "parameters", then the encoded point.
    func peer(_ share: [UInt8]) throws -> OpaquePointer? {
        let ctx = try #require(EVP_PKEY_CTX_new_from_name(nil, "X25519", nil))
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_paramgen_init(ctx) == 1 else { return nil }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(ctx, &key) == 1, let key else { return nil }
        guard EVP_PKEY_set1_encoded_public_key(key, share, share.count) == 1 else {
            EVP_PKEY_free(key)
            return nil
        }
        return key
    }

    func encoded(_ key: OpaquePointer) -> [UInt8] {
        var p: UnsafeMutablePointer<UInt8>?
        let n = EVP_PKEY_get1_encoded_public_key(key, &p)
        defer { CRYPTO_free(p, #file, #line) }
        return n > 0 && p != nil ? Array(UnsafeBufferPointer(start: p, count: n)) : []
    }

    func derive(_ mine: OpaquePointer, _ theirs: OpaquePointer) -> [UInt8]? {
        guard let ctx = EVP_PKEY_CTX_new(mine, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, theirs) == 1 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        var n = out.count
        guard EVP_PKEY_derive(ctx, &out, &n) == 1 else { return nil }
        return Array(out[0..<n])
    }

    @Test func bothSidesDeriveTheSameSecret() throws {
        let a = try generate(), b = try generate()
        defer { EVP_PKEY_free(a); EVP_PKEY_free(b) }
        #expect(encoded(a).count == 32)
        let bShare = try #require(try peer(encoded(b))), aShare = try #require(try peer(encoded(a)))
        defer { EVP_PKEY_free(bShare); EVP_PKEY_free(aShare) }
        let s1 = try #require(derive(a, bShare)), s2 = try #require(derive(b, aShare))
        #expect(s1 == s2 && s1.count == 32 && s1 != [UInt8](repeating: 0, count: 32))
        #expect(TLSLibrary.builtinX25519 == TLSLibrary.builtinECKeys)
    }

    @Test func lowOrderAndShortSharesAreRefused() throws {
        let a = try generate()
        defer { EVP_PKEY_free(a) }
        // The point 0 and the point 1 have small order: the shared secret would be all zeros.
        for share in [[UInt8](repeating: 0, count: 32), [1] + [UInt8](repeating: 0, count: 31)] {
            if let key = try peer(share) {
                #expect(derive(a, key) == nil)
                EVP_PKEY_free(key)
            }
        }
        #expect(try peer([UInt8](repeating: 9, count: 31)) == nil)
        OpenSSLErrors.clear()
    }
}
