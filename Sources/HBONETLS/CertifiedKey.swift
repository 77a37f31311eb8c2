import COpenSSL
import HBONECore
import HBONEIdentity
import Foundation

/// A workload's SVID: the chain it presents (leaf first, never the root) and its private key.
public final class CertifiedKey: @unchecked Sendable {
    public let chain: [Certificate]
    public let key: PrivateKey
    public let identity: SPIFFEID
    /// The SHA-256 of the files it was read from (nil: not read from files), so a reload can tell
    /// unchanged files without parsing them.
    public private(set) var sourceDigest: [UInt8]?

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

    /// Whether `other` presents the same chain (the same DER, in order) with the same key: a
    /// reload that re-read unchanged files may keep what it built from this one.
    public func isSame(as other: CertifiedKey) -> Bool {
        if self === other { return true }
        return chain.elementsEqual(other.chain) { $0.der == $1.der } && EVP_PKEY_eq(key.pkey, other.key.pkey) == 1
    }

    /// Reads `cert-chain.pem` and `key.pem` from a directory.
    public convenience init(directory: String) throws(TLSError) {
        let files = try Files(directory: directory)
        let (chain, key) = try files.parse()
        try self.init(chain: chain, key: key)
        sourceDigest = files.digest
    }

    /// The SVID in `directory`: `previous` itself when the files hold the bytes it was read from.
    /// Reading and hashing them costs a few µs; parsing the key costs about 0.5 ms (OpenSSL 3's
    /// decoders), which every reload paid for every local identity.
    public static func load(directory: String, reusing previous: CertifiedKey?) throws(TLSError) -> CertifiedKey {
        let files = try Files(directory: directory)
        if let previous, previous.sourceDigest == files.digest { return previous }
        let (chain, key) = try files.parse()
        let loaded = try CertifiedKey(chain: chain, key: key)
        loaded.sourceDigest = files.digest
        return loaded
    }

    /// The chain and key in `directory`, unchecked (tests present defective ones).
    static func readFiles(directory: String) throws(TLSError) -> ([Certificate], PrivateKey) {
        try Files(directory: directory).parse()
    }

    /// A directory's two files as read; only their SHA-256 is kept after parsing.
    private struct Files {
        let chainPath: String, keyPath: String
        let chain: [UInt8], key: [UInt8]

        init(directory: String) throws(TLSError) {
            chainPath = directory + "/cert-chain.pem"
            keyPath = directory + "/key.pem"
            guard let chainData = FileManager.default.contents(atPath: chainPath) else {
                throw TLSError(code: "svid", reason: "cannot read \(chainPath)")
            }
            guard let keyData = FileManager.default.contents(atPath: keyPath) else {
                throw TLSError(code: "svid", reason: "cannot read \(keyPath)")
            }
            chain = [UInt8](chainData)
            key = [UInt8](keyData)
        }

        /// Each file's SHA-256, one after the other.
        var digest: [UInt8] { TrustBundle.sha256(chain) + TrustBundle.sha256(key) }

        func parse() throws(TLSError) -> ([Certificate], PrivateKey) {
            let certificates: [Certificate]
            do {
                certificates = try Certificate.parsePEMChain(chain)
            } catch {
                throw TLSError(code: "svid", reason: "\(chainPath): \(error.reason)")
            }
            do {
                return (certificates, try PrivateKey.parsePEM(key))
            } catch {
                throw TLSError(code: "svid", reason: "\(keyPath): \(error.reason)")
            }
        }
    }

    public var notAfter: Date { leaf.notAfter }
    public var notBefore: Date { leaf.notBefore }
}
