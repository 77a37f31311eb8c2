import COpenSSL
import CHBONEOpenSSLShim
import Atomics
import Foundation

/// The roots every peer chain must end at (several during a root rotation). Owns one X509_STORE,
/// shared by every SSL_CTX built from this bundle (`SSL_CTX_set1_cert_store` adds a reference).
public final class TrustBundle: @unchecked Sendable {
    let store: OpaquePointer
    public let roots: [Certificate]
    /// Increases with every bundle built, so caches keyed on a bundle can tell an old one.
    public let generation: Int
    private static let generations = ManagedAtomic<Int>(0)
    /// SHA-256 of each root's DER.
    private let anchors: Set<[UInt8]>

    /// `allowEmpty`: a bundle that trusts nothing yet (roots still to come from the Istio CA); every
    /// peer is refused until a bundle with roots replaces it.
    public init(roots: [Certificate], allowEmpty: Bool = false) throws(TLSError) {
        guard !roots.isEmpty || allowEmpty else { throw TLSError(code: "trust_bundle", reason: "no root certificate") }
        guard let store = X509_STORE_new() else { throw TLSError.fromQueue(code: "trust_bundle", "X509_STORE_new") }
        for root in roots {
            guard root.isCA else {
                X509_STORE_free(store)
                throw TLSError(code: "trust_bundle", reason: "\(root.subject) is not a CA certificate")
            }
            OpenSSLErrors.clear()
            if X509_STORE_add_cert(store, root.x509) != 1 {
                let entries = OpenSSLErrors.drain()
                // A duplicate root is harmless; anything else is not.
                if !entries.allSatisfy({ $0.contains("cert already in hash table") }) {
                    X509_STORE_free(store)
                    throw TLSError(code: "trust_bundle", reason: entries.joined(separator: "; "))
                }
            }
        }
        self.store = store
        self.roots = roots
        self.anchors = Set(roots.map { root in
            var digest = [UInt8](repeating: 0, count: 32)
            let der = root.der
            _ = der.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &digest) }
            return digest
        })
        self.generation = TrustBundle.generations.wrappingIncrementThenLoad(ordering: .relaxed)
    }

    /// Whether a chain verified up to `anchor` (a root's SHA-256) still ends at a root of this bundle.
    public func contains(anchor: [UInt8]) -> Bool { anchors.contains(anchor) }

    /// Verifies `chain` (leaf first, intermediates after) up to a root of this bundle, as of `time`.
    /// Nil when it verifies; otherwise OpenSSL's reason. For our own SVIDs before we present them.
    public func verify(chain: [Certificate], at time: Date = Date()) -> String? {
        guard let leaf = chain.first else { return "empty certificate chain" }
        OpenSSLErrors.clear()
        guard let context = X509_STORE_CTX_new() else { return "X509_STORE_CTX_new failed" }
        defer { X509_STORE_CTX_free(context) }
        // The stack owns one reference to each intermediate: up-ref before push, freed with it.
        guard let untrusted = chbone_sk_x509_new_null() else { return "out of memory" }
        defer { chbone_sk_x509_pop_free(untrusted) }
        for c in chain.dropFirst() {
            X509_up_ref(c.x509)
            if chbone_sk_x509_push(untrusted, c.x509) == 0 {
                X509_free(c.x509)
                return "out of memory"
            }
        }
        guard X509_STORE_CTX_init(context, store, leaf.x509, untrusted) == 1 else {
            return OpenSSLErrors.drain().joined(separator: "; ")
        }
        X509_STORE_CTX_set_time(context, 0, time_t(time.timeIntervalSince1970))
        if X509_verify_cert(context) == 1 { return nil }
        let code = X509_STORE_CTX_get_error(context)
        OpenSSLErrors.clear()
        return String(cString: X509_verify_cert_error_string(Int(code)))
    }

    public convenience init(pem: [UInt8]) throws(TLSError) {
        try self.init(roots: Certificate.parsePEMChain(pem))
    }

    public convenience init(file: String) throws(TLSError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TLSError(code: "trust_bundle", reason: "cannot read \(file)")
        }
        try self.init(pem: [UInt8](data))
    }

    deinit { X509_STORE_free(store) }

    /// SHA-256 fingerprints of the roots, to tell whether a reloaded file changed anything.
    public var fingerprint: [UInt8] { roots.flatMap(\.der) }
}
