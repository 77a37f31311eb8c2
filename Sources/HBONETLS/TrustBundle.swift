import COpenSSL
import CHBONEOpenSSLShim
import Atomics
import Foundation
import HBONECore

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
    /// The CRLs peers' chains are checked against (ztunnel's CRL_PATH); nil: revocation is not
    /// checked, [] a list is configured and revokes nothing (yet).
    public let revocationLists: [RevocationList]?
    /// SHA-256 of the lists' DER, to tell whether a reload changed what is revoked.
    public let revocationFingerprint: [UInt8]
    /// Chains `verify` accepted, by the SHA-256 of their DER, with the seconds in which every
    /// certificate of the verified path (its root too) is valid. Every reload asks again for every
    /// local SVID (about 140 µs each); under the same bundle only the time can change the answer.
    /// Verification here checks no revocation list, so the lists cannot change it either.
    private let accepted = Locked<[[UInt8]: Range<Int>]>([:])

    /// `allowEmpty`: a bundle that trusts nothing yet (roots still to come from the Istio CA); every
    /// peer is refused until a bundle with roots replaces it.
    public init(roots: [Certificate], revocationLists: [RevocationList]? = nil, allowEmpty: Bool = false) throws(TLSError) {
        guard !roots.isEmpty || allowEmpty else { throw TLSError(code: "trust_bundle", reason: "no root certificate") }
        guard let store = X509_STORE_new() else { throw TLSError.fromQueue(code: "trust_bundle", "X509_STORE_new") }
        /// Adds one object; a duplicate is harmless, anything else frees the store and throws.
        func add(_ code: String, _ adding: () -> Int32) throws(TLSError) {
            OpenSSLErrors.clear()
            guard adding() != 1 else { return }
            let entries = OpenSSLErrors.drain()
            if entries.allSatisfy({ $0.contains("already in hash table") }) { return }
            X509_STORE_free(store)
            throw TLSError(code: code, reason: entries.joined(separator: "; "))
        }
        for root in roots {
            guard root.isCA else {
                X509_STORE_free(store)
                throw TLSError(code: "trust_bundle", reason: "\(root.subject) is not a CA certificate")
            }
            try add("trust_bundle") { X509_STORE_add_cert(store, root.x509) }
        }
        for list in revocationLists ?? [] { try add("crl") { X509_STORE_add_crl(store, list.crl) } }
        self.store = store
        self.roots = roots
        self.revocationLists = revocationLists
        self.revocationFingerprint = Self.fingerprint(revocationLists)
        self.anchors = Set(roots.map { Self.sha256($0.der) })
        self.generation = TrustBundle.generations.wrappingIncrementThenLoad(ordering: .relaxed)
    }

    /// `revocationFingerprint` of these lists: SHA-256 of their DER; [] for none configured.
    static func fingerprint(_ lists: [RevocationList]?) -> [UInt8] { lists.map { sha256($0.flatMap(\.der)) } ?? [] }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        _ = bytes.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &digest) }
        return digest
    }

    /// Runs `body` on a verification context for `chain` (leaf first, intermediates after) under
    /// this bundle; nil when the context cannot be made (out of memory).
    private func withContext<R>(_ chain: [Certificate], _ body: (OpaquePointer) -> R) -> R? {
        guard let leaf = chain.first, let context = X509_STORE_CTX_new() else { return nil }
        defer { X509_STORE_CTX_free(context) }
        // The stack owns one reference to each intermediate: up-ref before push, freed with it.
        guard let untrusted = chbone_sk_x509_new_null() else { return nil }
        defer { chbone_sk_x509_pop_free(untrusted) }
        for c in chain.dropFirst() {
            X509_up_ref(c.x509)
            if chbone_sk_x509_push(untrusted, c.x509) == 0 {
                X509_free(c.x509)
                return nil
            }
        }
        guard X509_STORE_CTX_init(context, store, leaf.x509, untrusted) == 1 else { return nil }
        return body(context)
    }

    /// Whether a chain verified up to `anchor` (a root's SHA-256) still ends at a root of this bundle.
    public func contains(anchor: [UInt8]) -> Bool { anchors.contains(anchor) }

    /// Verifies `chain` (leaf first, intermediates after) up to a root of this bundle, as of `time`.
    /// Nil when it verifies; otherwise OpenSSL's reason. For our own SVIDs before we present them.
    public func verify(chain: [Certificate], at time: Date = Date()) -> String? {
        guard !chain.isEmpty else { return "empty certificate chain" }
        let seconds = Int(time.timeIntervalSince1970)
        let key = Self.sha256(chain.flatMap { $0.der + [0] })
        if let window = accepted.withLock({ $0[key] }), window.contains(seconds) { return nil }
        OpenSSLErrors.clear()
        defer { OpenSSLErrors.clear() }
        let verdict: String?? = withContext(chain) { context in
            X509_STORE_CTX_set_time(context, 0, time_t(seconds))
            guard X509_verify_cert(context) == 1 else {
                return String(cString: X509_verify_cert_error_string(Int(X509_STORE_CTX_get_error(context))))
            }
            let (notBefore, notAfter) = VerifiedChainCache.window(X509_STORE_CTX_get0_chain(context))
            if notBefore < notAfter {
                accepted.withLock { accepted in
                    if accepted.count >= 4096 { accepted.removeAll() }
                    accepted[key] = notBefore..<notAfter
                }
            }
            return nil
        }
        return verdict ?? "cannot set up verification: \(OpenSSLErrors.drain().joined(separator: "; "))"
    }

    public convenience init(pem: [UInt8], revocationLists: [RevocationList]? = nil) throws(TLSError) {
        try self.init(roots: Certificate.parsePEMChain(pem), revocationLists: revocationLists)
    }

    public convenience init(file: String, revocationLists: [RevocationList]? = nil) throws(TLSError) {
        try self.init(roots: TrustBundle.roots(file: file), revocationLists: revocationLists)
    }

    /// The certificates of a PEM root file.
    public static func roots(file: String) throws(TLSError) -> [Certificate] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TLSError(code: "trust_bundle", reason: "cannot read \(file)")
        }
        return try Certificate.parsePEMChain([UInt8](data))
    }

    /// Handshakes check the peer's whole chain against the lists (leaf and intermediates).
    var checksRevocation: Bool { !(revocationLists?.isEmpty ?? true) }

    /// Errors that leave a certificate's revocation status unknown, which is not a revocation (as
    /// ztunnel: no list from its issuer, or the list is past its next update).
    static let unknownRevocationStatus: Set<Int32> = [X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER,
                                                      X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID]

    /// Whether these lists revoke a certificate of `chain` (leaf first, as the peer sent it), for a
    /// connection that was verified when it was made: "depth N: certificate revoked", or nil.
    /// Only a revocation counts; expiry and everything else the handshake checked are not judged
    /// again, and a list whose signature does not verify revokes nothing.
    public func revocation(of chain: [Certificate]) -> String? {
        guard checksRevocation else { return nil }
        OpenSSLErrors.clear()
        defer { OpenSSLErrors.clear() }
        let verdict: String?? = withContext(chain) { context in
            X509_STORE_CTX_set_flags(context, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL | X509_V_FLAG_NO_CHECK_TIME))
            X509_STORE_CTX_set_verify_cb(context, revocationOnlyCallback)
            guard X509_verify_cert(context) != 1, X509_STORE_CTX_get_error(context) == X509_V_ERR_CERT_REVOKED else { return nil }
            return "depth \(X509_STORE_CTX_get_error_depth(context)): certificate revoked"
        }
        return verdict ?? nil
    }

    deinit { X509_STORE_free(store) }

    /// `previous` when it holds exactly these roots, in this order, and these lists; else a new
    /// bundle. A reload that changed neither (most xDS pushes, most file events) then keeps the
    /// bundle's generation, so every loop's verified-chain cache stays warm and every identity's
    /// TLS contexts can be kept: a new bundle made every peer's next handshake verify its chain in
    /// full again, on every loop.
    public static func reusing(_ previous: TrustBundle?, roots: [Certificate], revocationLists: [RevocationList]?,
                               allowEmpty: Bool = false) throws(TLSError) -> TrustBundle {
        if let previous, previous.roots.elementsEqual(roots, by: { $0.der == $1.der }),
           (previous.revocationLists == nil) == (revocationLists == nil),
           previous.revocationFingerprint == fingerprint(revocationLists) {
            return previous
        }
        return try TrustBundle(roots: roots, revocationLists: revocationLists, allowEmpty: allowEmpty)
    }
}

/// A re-check that judges revocation only: a revoked certificate stops it; a list that cannot be
/// trusted (its signature, its scope, an extension it does not know) stops it without a revocation;
/// anything else the handshake already judged lets it go on.
private let revocationOnlyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { ok, context in
    guard ok != 1, let context else { return 1 }
    switch X509_STORE_CTX_get_error(context) {
    case X509_V_ERR_CERT_REVOKED, X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE,
         X509_V_ERR_KEYUSAGE_NO_CRL_SIGN, X509_V_ERR_DIFFERENT_CRL_SCOPE, X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION,
         X509_V_ERR_CRL_PATH_VALIDATION_ERROR, X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD, X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
        return 0
    default:
        return 1
    }
}
