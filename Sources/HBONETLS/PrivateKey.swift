import COpenSSL
import CHBONEOpenSSLShim

/// A private key. Owns one EVP_PKEY reference.
public final class PrivateKey: @unchecked Sendable {
    let pkey: OpaquePointer

    init(takingOwnership pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    /// Parses a PEM private key (PKCS#8, SEC1 or PKCS#1); one whose public half is not its private
    /// half's is refused.
    public static func parsePEM(_ pem: [UInt8]) throws(TLSError) -> PrivateKey {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        if let key = try p256(pem) { return PrivateKey(takingOwnership: key) }
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else { throw TLSError.fromQueue(code: "key", "no PEM private key found") }
        OpenSSLErrors.clear()
        // The decoder takes a public half that is not the private half's; such a key would sign
        // for another key than the one its certificate names.
        guard chbone_pkey_pairwise_check(key) != 0 else {
            EVP_PKEY_free(key)
            throw inconsistentKey
        }
        // See TLSLibrary: an EC key must be of the kind the process-wide EC method signs with.
        if let converted = chbone_pkey_to_builtin_ec(key) {
            EVP_PKEY_free(key)
            return PrivateKey(takingOwnership: converted)
        }
        return PrivateKey(takingOwnership: key)
    }

    /// A P-256 key whose PEM is one unencrypted PKCS#8 or SEC1 block, decoded by the shim's fast
    /// path (builtin_ec.c); nil for anything else, which the general decoder then reads. Throws for
    /// a P-256 key whose public point is not its scalar's.
    private static func p256(_ pem: [UInt8]) throws(TLSError) -> OpaquePointer? {
        var inconsistent: Int32 = 0
        let key = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            var name: UnsafeMutablePointer<CChar>?, header: UnsafeMutablePointer<CChar>?
            var der: UnsafeMutablePointer<UInt8>?
            var length = 0
            defer {
                // The DER holds the private key: cleansed before it is freed.
                if let der { OPENSSL_cleanse(der, length) }
                chbone_openssl_free(name)
                chbone_openssl_free(header)
                chbone_openssl_free(der)
                OpenSSLErrors.clear()
            }
            guard PEM_read_bio(bio, &name, &header, &der, &length) == 1, let name, let header, header.pointee == 0, let der else { return nil }
            switch String(cString: name) {
            case "PRIVATE KEY": return chbone_decode_p256_private_key(der, length, 1, &inconsistent)
            case "EC PRIVATE KEY": return chbone_decode_p256_private_key(der, length, 0, &inconsistent)
            default: return nil
            }
        }
        if inconsistent == 1 { throw inconsistentKey }
        return key
    }

    static let inconsistentKey = TLSError(code: "key", reason: "private key whose public half does not belong to its private half")
}
