import COpenSSL
import HBONECore
import HBONEIdentity
import Foundation

/// A workload's SVID: the chain it presents (leaf first, never the root) and its private key.
public final class CertifiedKey: @unchecked Sendable {
    public let chain: [Certificate]
    public let key: PrivateKey
    public let identity: SPIFFEID

    public var leaf: Certificate { chain[0] }

    public init(chain: [Certificate], key: PrivateKey) throws(TLSError) {
        guard let leaf = chain.first else { throw TLSError(code: "svid", reason: "empty certificate chain") }
        OpenSSLErrors.clear()
        guard X509_check_private_key(leaf.x509, key.pkey) == 1 else {
            throw TLSError.fromQueue(code: "svid", "private key does not match the leaf certificate")
        }
        let uris = leaf.uriSANs
        guard uris.count == 1 else { throw TLSError(code: "svid", reason: "leaf must carry exactly one URI SAN, has \(uris.count)") }
        do {
            identity = try SPIFFEID(parsing: uris[0])
        } catch {
            throw TLSError(code: "svid", reason: "leaf URI SAN \(Log.jsonString(String(uris[0].prefix(120)))): \(error)")
        }
        // Roots are never sent (hbone-reference §3): drop a trailing self-signed certificate.
        var presented = chain
        if presented.count > 1, let last = presented.last, last.isSelfSigned { presented.removeLast() }
        self.chain = presented
        self.key = key
    }

    /// Presents a chain without checking it is a valid SVID: only tests use it, to present defective leaves.
    init(unchecked chain: [Certificate], key: PrivateKey, identity: SPIFFEID) {
        self.chain = chain
        self.key = key
        self.identity = identity
    }

    /// Reads `cert-chain.pem` and `key.pem` from a directory.
    public convenience init(directory: String) throws(TLSError) {
        let (chain, key) = try CertifiedKey.readFiles(directory: directory)
        try self.init(chain: chain, key: key)
    }

    static func readFiles(directory: String) throws(TLSError) -> ([Certificate], PrivateKey) {
        let chainPath = directory + "/cert-chain.pem"
        let keyPath = directory + "/key.pem"
        guard let chainData = FileManager.default.contents(atPath: chainPath) else {
            throw TLSError(code: "svid", reason: "cannot read \(chainPath)")
        }
        guard let keyData = FileManager.default.contents(atPath: keyPath) else {
            throw TLSError(code: "svid", reason: "cannot read \(keyPath)")
        }
        let chain: [Certificate]
        do {
            chain = try Certificate.parsePEMChain([UInt8](chainData))
        } catch {
            throw TLSError(code: "svid", reason: "\(chainPath): \(error.reason)")
        }
        let key: PrivateKey
        do {
            key = try PrivateKey.parsePEM([UInt8](keyData))
        } catch {
            throw TLSError(code: "svid", reason: "\(keyPath): \(error.reason)")
        }
        return (chain, key)
    }

    public var notAfter: Date { leaf.notAfter }
    public var notBefore: Date { leaf.notBefore }
}
