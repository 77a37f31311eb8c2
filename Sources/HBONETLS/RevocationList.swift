import COpenSSL
import CHBONEOpenSSLShim
import Foundation

/// One X.509 certificate revocation list (a CA's list of the serials it revoked). Owns one
/// reference to the C object and frees it in `deinit`.
public final class RevocationList: @unchecked Sendable {
    // Immutable after init; OpenSSL allows concurrent reads of an X509_CRL.
    let crl: OpaquePointer

    /// Takes ownership of one reference to `crl`.
    init(takingOwnership crl: OpaquePointer) { self.crl = crl }

    deinit { X509_CRL_free(crl) }

    /// Every CRL in a file's bytes, as ztunnel's CRL_PATH takes them: PEM (each `X509 CRL` block;
    /// other blocks are skipped) or one DER CRL. An empty file, or PEM without a CRL, revokes
    /// nothing. Anything else that is not a CRL is an error: a damaged list must not pass for none.
    public static func parse(_ bytes: [UInt8]) throws(TLSError) -> [RevocationList] {
        TLSLibrary.prepare()
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return [] }
        let pemMarker = Array("-----BEGIN".utf8)
        guard bytes.firstRange(of: pemMarker) != nil else {
            OpenSSLErrors.clear()
            let crl: OpaquePointer? = bytes.withUnsafeBytes { raw in
                var p = raw.bindMemory(to: UInt8.self).baseAddress
                return d2i_X509_CRL(nil, &p, raw.count)
            }
            guard let crl else { throw TLSError.fromQueue(code: "crl", "neither PEM nor a DER CRL") }
            return [RevocationList(takingOwnership: crl)]
        }
        return try PEMReader.readAll(bytes, code: "crl") { bio in PEM_read_bio_X509_CRL(bio, nil, nil, nil).map(RevocationList.init(takingOwnership:)) }
    }

    /// The CA that issued the list (its subject).
    public var issuer: String { Certificate.name(X509_CRL_get_issuer(crl)) }

    /// How many certificates it revokes.
    public var revokedCount: Int { Int(chbone_x509_crl_revoked_count(crl)) }

    /// When the CA promised a newer list; nil when it did not say. A list past it still counts, as
    /// in ztunnel: a stale list of revocations is better than none.
    public var nextUpdate: Date? { X509_CRL_get0_nextUpdate(crl).map { Certificate.date($0) } }

    /// The DER bytes (to tell whether a reloaded file changed anything).
    public var der: [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let n = i2d_X509_CRL(crl, &out)
        guard n > 0, let out else { return [] }
        defer { chbone_openssl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }
}
