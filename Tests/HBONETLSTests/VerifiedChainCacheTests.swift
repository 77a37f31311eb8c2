import Testing
import HBONETestSupport
import HBONEIdentity
@testable import HBONETLS

@Suite struct VerifiedChainCacheTests {
    func handshake(serverCache: VerifiedChainCache, serverTrust: TrustBundle, clientCert: String = "certs-east/payments/checkout",
                   expected: Set<SPIFFEID> = [ledger], clientCache: VerifiedChainCache? = nil, clientTrust: TrustBundle? = nil) throws -> (TLSEngine.HandshakeStatus, TLSEngine.HandshakeStatus) {
        let clientContext = try TLSContext(role: .client, certifiedKey: loadKey(clientCert), trust: clientTrust ?? bundle())
        let serverContext = try TLSContext(role: .server, certifiedKey: loadKey("certs-west/payments/ledger"), trust: serverTrust)
        let pair = EnginePair(
            client: try TLSEngine(context: clientContext, verification: .outbound(expected: expected), chainCache: clientCache),
            server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: ["cluster.local"]), chainCache: serverCache))
        let r = pair.run()
        if r.1 == .complete { #expect(pair.server.peerIdentity == checkout) }
        return r
    }

    @Test func secondHandshakeWithTheSameChainHitsTheCache() throws {
        let cache = VerifiedChainCache()
        let trust = try bundle()
        #expect(try handshake(serverCache: cache, serverTrust: trust).1 == .complete)
        #expect(cache.misses == 1 && cache.hits == 0 && cache.count == 1)
        #expect(try handshake(serverCache: cache, serverTrust: trust).1 == .complete)
        #expect(cache.hits == 1)
    }

    @Test func aHitStillAppliesTheSVIDRules() throws {
        let cache = VerifiedChainCache()
        let trust = try bundle()
        // The client's cache learns west's chain, then a client expecting another identity must still refuse it.
        #expect(try handshake(serverCache: VerifiedChainCache(), serverTrust: trust, clientCache: cache, clientTrust: trust).0 == .complete)
        let (c, _) = try handshake(serverCache: VerifiedChainCache(), serverTrust: trust, expected: [checkout], clientCache: cache, clientTrust: trust)
        guard case let .failed(error) = c else {
            Issue.record("accepted an unexpected identity on a cache hit")
            return
        }
        #expect(error.code == "unexpected_identity")
        #expect(cache.hits == 1)
    }

    @Test func aNewTrustBundleStartsCold() throws {
        let cache = VerifiedChainCache()
        #expect(try handshake(serverCache: cache, serverTrust: bundle()).1 == .complete)
        // Same roots, new bundle object: a new generation, so no entry of the old one is used.
        #expect(try handshake(serverCache: cache, serverTrust: bundle()).1 == .complete)
        #expect(cache.hits == 0 && cache.misses == 2)
    }

    /// The key covers the whole presented chain, not the leaf alone: the cached leaf with another
    /// cluster's intermediate is a miss, verified in full, and refused.
    @Test func theCachedLeafWithAnotherIntermediateIsVerifiedInFull() throws {
        let cache = VerifiedChainCache()
        let trust = try bundle()
        #expect(try handshake(serverCache: cache, serverTrust: trust).1 == .complete)
        let good = try loadKey("certs-east/payments/checkout")
        let west = try loadKey("certs-west/payments/ledger")
        let forged = CertifiedKey(unchecked: [good.leaf, west.chain[1]], key: good.key, identity: checkout)
        let clientContext = try TLSContext(role: .client, certifiedKey: forged, trust: trust)
        let serverContext = try TLSContext(role: .server, certifiedKey: west, trust: trust)
        let pair = EnginePair(
            client: try TLSEngine(context: clientContext, verification: .outbound(expected: [ledger])),
            server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: ["cluster.local"]), chainCache: cache))
        #expect(pair.run().1 != .complete)
        #expect(cache.hits == 0 && cache.misses == 2 && cache.count == 1)
    }

    @Test func rejectedChainsAreNotCached() throws {
        let cache = VerifiedChainCache()
        let (_, s) = try handshake(serverCache: cache, serverTrust: bundle(), clientCert: "certs-other/payments/checkout")
        #expect(s != .complete)
        #expect(cache.count == 0)
    }
}

@Suite struct TrustAnchorTests {
    /// Every verified peer records the root its chain ended at, on a full verification and on a cache hit.
    @Test(arguments: [false, true])
    func anchorNamesTheRootTheChainEndedAt(cached: Bool) throws {
        let cache: VerifiedChainCache? = cached ? VerifiedChainCache() : nil
        let both = try bundle("bundle-root-and-other.pem")
        let clientContext = try TLSContext(role: .client, certifiedKey: loadKey("certs-other/payments/checkout"), trust: both)
        let serverContext = try TLSContext(role: .server, certifiedKey: loadKey("certs-west/payments/ledger"), trust: both)
        for _ in 0..<(cached ? 2 : 1) {
            let pair = EnginePair(
                client: try TLSEngine(context: clientContext, verification: .outbound(expected: [ledger])),
                server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: ["cluster.local"]), chainCache: cache))
            #expect(pair.run() == (.complete, .complete))
            let anchor = try #require(pair.server.trustAnchor)
            #expect(both.contains(anchor: anchor))
            #expect(try TrustBundle(pem: TestPKI.bytes("other-root/root-cert.pem")).contains(anchor: anchor))
            #expect(!(try bundle()).contains(anchor: anchor))       // the shared root alone: not this peer's
            #expect(pair.client.trustAnchor.map { try! bundle().contains(anchor: $0) } == true)
        }
        if let cache { #expect(cache.hits == 1) }
    }

    /// Both sides learn when the peer's chain ends (its leaf's notAfter here: 2 days, under a
    /// 5-year intermediate), on a full verification and on a cache hit.
    @Test(arguments: [false, true])
    func peerNotAfterIsTheEarliestEndInTheChain(cached: Bool) throws {
        let cache: VerifiedChainCache? = cached ? VerifiedChainCache() : nil
        let clientKey = try loadKey("certs-east/payments/checkout"), serverKey = try loadKey("certs-west/payments/ledger")
        let clientContext = try TLSContext(role: .client, certifiedKey: clientKey, trust: bundle())
        let serverContext = try TLSContext(role: .server, certifiedKey: serverKey, trust: bundle())
        for _ in 0..<(cached ? 2 : 1) {
            let pair = EnginePair(
                client: try TLSEngine(context: clientContext, verification: .outbound(expected: [ledger]), chainCache: cache),
                server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: ["cluster.local"]), chainCache: cache))
            #expect(pair.run() == (.complete, .complete))
            #expect(pair.server.peerNotAfter == Int(clientKey.notAfter.timeIntervalSince1970))
            #expect(pair.client.peerNotAfter == Int(serverKey.notAfter.timeIntervalSince1970))
        }
        if let cache { #expect(cache.hits == 2) }
    }
}
