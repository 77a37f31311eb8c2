import COpenSSL
import CHBONEOpenSSLShim
import Foundation

/// Chains that already passed full OpenSSL verification, keyed by the SHA-256 of their exact DER
/// bytes and the verifying role. A hit skips chain building and signature checks (about 40 % of a
/// server handshake here) but still requires the same trust-bundle generation and that every
/// certificate of the verified chain is within its validity period now; the SVID rules at depth 0
/// run on every handshake regardless. One per event loop: not thread-safe, no locks.
public final class VerifiedChainCache {
    struct Entry {
        let generation: Int
        let notBefore: Int     // latest notBefore in the verified chain (Unix seconds)
        let notAfter: Int      // earliest notAfter in the verified chain
        let anchor: [UInt8]    // SHA-256 of the root the chain ended at
        let leaf: LeafFacts    // what the SVID rules read from the leaf (its bytes are in the key)
    }

    private var entries: [[UInt8]: Entry] = [:]
    public let capacity: Int
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(capacity: Int = 4096) { self.capacity = capacity }

    public var count: Int { entries.count }

    /// A still-valid verified chain's entry, or nil (a miss).
    func lookup(_ key: [UInt8], generation: Int, now: Int) -> Entry? {
        guard let e = entries[key] else { misses += 1; return nil }
        guard e.generation == generation, now >= e.notBefore, now < e.notAfter else {
            entries[key] = nil
            misses += 1
            return nil
        }
        hits += 1
        return e
    }

    func store(_ key: [UInt8], _ entry: Entry) {
        // Bounded: when full, drop an arbitrary entry (a miss only costs one full verification).
        if entries.count >= capacity, let victim = entries.keys.first { entries[victim] = nil }
        entries[key] = entry
    }

    /// The cache key: role, then the SHA-256 of the peer's Certificate message as received (its
    /// certificates' exact DER, leaf first), captured while OpenSSL read it. Nil when none was
    /// captured for `ssl`.
    static func key(role: UInt8, ssl: OpaquePointer) -> [UInt8]? {
        var key = [UInt8](repeating: role, count: 33)
        let taken = key.withUnsafeMutableBufferPointer { chbone_ssl_take_peer_certificates_digest(ssl, $0.baseAddress! + 1) }
        return taken == 1 ? key : nil
    }

    /// SHA-256 of the last certificate of a verified chain: the trust anchor.
    static func anchor(_ chain: OpaquePointer?) -> [UInt8]? {
        guard let chain, chbone_sk_x509_num(chain) > 0, let root = chbone_sk_x509_value(chain, chbone_sk_x509_num(chain) - 1) else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(root, EVP_sha256(), &digest, &length) == 1 else { return nil }
        return Array(digest[0..<Int(length)])
    }

    /// Validity window of a verified chain (intersection of all certificates' periods).
    static func window(_ chain: OpaquePointer?) -> (Int, Int) {
        var notBefore = Int.min, notAfter = Int.max
        guard let chain else { return (Int.max, Int.min) }
        for i in 0..<chbone_sk_x509_num(chain) {
            guard let x = chbone_sk_x509_value(chain, i) else { continue }
            notBefore = max(notBefore, Int(Certificate.date(X509_get0_notBefore(x)).timeIntervalSince1970))
            notAfter = min(notAfter, Int(Certificate.date(X509_get0_notAfter(x)).timeIntervalSince1970))
        }
        return (notBefore, notAfter)
    }
}

/// Replaces OpenSSL's chain verification step: a cache hit answers at once, a miss verifies fully
/// (tlsVerifyCallback still runs per depth) and fills the cache. Context as in tlsVerifyCallback.
let tlsCertVerifyCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { storeContext, _ in
    guard let storeContext else { return 0 }
    guard let rawSSL = X509_STORE_CTX_get_ex_data(storeContext, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let rawEngine = SSL_get_ex_data(OpaquePointer(rawSSL), TLSEngine.exDataIndex)
    else { return X509_verify_cert(storeContext) }
    let engine = Unmanaged<TLSEngine>.fromOpaque(rawEngine).takeUnretainedValue()
    return engine.verifyChain(storeContext)
}

extension TLSEngine {
    func verifyChain(_ storeContext: OpaquePointer) -> Int32 {
        // No cache, or no captured Certificate message (never with the capture on): verify in full, keep nothing.
        guard let cache = chainCache, X509_STORE_CTX_get0_cert(storeContext) != nil,
              let key = VerifiedChainCache.key(role: role == .server ? 1 : 2, ssl: ssl) else {
            let rc = X509_verify_cert(storeContext)
            if rc == 1 {
                let chain = X509_STORE_CTX_get0_chain(storeContext)
                trustAnchor = VerifiedChainCache.anchor(chain)
                peerNotAfter = VerifiedChainCache.window(chain).1
            }
            return rc
        }
        let generation = trust.generation
        if let entry = cache.lookup(key, generation: generation, now: Int(time(nil))) {
            // The chain is known good under this bundle; the SVID rules still decide.
            trustAnchor = entry.anchor
            peerNotAfter = entry.notAfter
            return applySVIDRules(entry.leaf, storeContext)
        }
        let rc = X509_verify_cert(storeContext)
        if rc == 1 && peerIdentity != nil, let facts = leafFacts {
            let chain = X509_STORE_CTX_get0_chain(storeContext)
            let (notBefore, notAfter) = VerifiedChainCache.window(chain)
            let anchor = VerifiedChainCache.anchor(chain) ?? []
            trustAnchor = anchor
            peerNotAfter = notAfter
            cache.store(key, .init(generation: generation, notBefore: notBefore, notAfter: notAfter, anchor: anchor, leaf: facts))
        }
        return rc
    }
}
