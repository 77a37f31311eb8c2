import COpenSSL
import CHBONEOpenSSLShim

/// A private key. Owns one EVP_PKEY reference.
public final class PrivateKey: @unchecked Sendable {
    let pkey: OpaquePointer

    init(takingOwnership pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    /// Parses a PEM private key (PKCS#8, SEC1 or PKCS#1).
    public static func parsePEM(_ pem: [UInt8]) throws(TLSError) -> PrivateKey {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else { throw TLSError.fromQueue(code: "key", "no PEM private key found") }
        OpenSSLErrors.clear()
        // See TLSLibrary: an EC key must be of the kind the process-wide EC method signs with.
        if let converted = chbone_pkey_to_builtin_ec(key) {
            EVP_PKEY_free(key)
            return PrivateKey(takingOwnership: converted)
        }
        return PrivateKey(takingOwnership: key)
    }
}
