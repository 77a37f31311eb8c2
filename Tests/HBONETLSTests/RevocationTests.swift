import Testing
import Foundation
import HBONETestSupport
import HBONEIdentity
@testable import HBONETLS

/// Certificate revocation lists (ztunnel's CRL_PATH), made by scripts/gen-test-pki.sh with
/// `openssl ca`: east's intermediate revokes one checkout SVID, the root revokes east's
/// intermediate, west's list revokes nothing, and a forged list in east's name revokes the good one.
@Suite struct RevocationTests {
    static func lists(_ names: String...) throws -> [RevocationList] {
        try names.flatMap { try RevocationList.parse(TestPKI.bytes("crl/\($0)")) }
    }

    /// checkout (`client`) → ledger, the server holding `lists`.
    func handshake(client: String = "certs-east/payments/checkout", lists: [RevocationList]?) throws -> (client: TLSEngine.HandshakeStatus, server: TLSEngine.HandshakeStatus, pair: EnginePair) {
        let serverTrust = try TrustBundle(pem: TestPKI.bytes("bundle-root.pem"), revocationLists: lists)
        let clientContext = try TLSContext(role: .client, certifiedKey: loadKey(client), trust: bundle())
        let serverContext = try TLSContext(role: .server, certifiedKey: loadKey("certs-west/payments/ledger"), trust: serverTrust)
        let pair = EnginePair(client: try TLSEngine(context: clientContext, verification: .outbound(expected: [ledger])),
                              server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: ["cluster.local"]),
                                                    chainCache: VerifiedChainCache()))
        let r = pair.run()
        return (r.0, r.1, pair)
    }

    func rejection(_ status: TLSEngine.HandshakeStatus) -> String? {
        if case let .failed(e) = status { return e.code }
        return nil
    }

    @Test func parsingPEMDERAndNothing() throws {
        let pem = try TestPKI.bytes("crl/east-revokes-checkout.pem")
        let one = try RevocationList.parse(pem)
        #expect(one.count == 1 && one[0].revokedCount == 1 && one[0].issuer.contains("cluster-east intermediate"))
        #expect(one[0].nextUpdate.map { $0 > Date() } == true)
        // Several lists in one file, certificates between them skipped.
        let mixed = try TestPKI.bytes("crl/west-empty.pem") + TestPKI.bytes("bundle-root.pem") + pem
        #expect(try RevocationList.parse(mixed).map(\.revokedCount) == [0, 1])
        #expect(try RevocationList.parse(one[0].der).map(\.der) == [one[0].der])
        #expect(try RevocationList.parse([]).isEmpty)
        #expect(try RevocationList.parse(Array(" \n".utf8)).isEmpty)
        #expect(try RevocationList.parse(TestPKI.bytes("bundle-root.pem")).isEmpty)
        for damaged in [Array("not a CRL".utf8), Array(pem.prefix(pem.count / 2)) + Array("\n-----END X509 CRL-----\n".utf8)] {
            #expect(throws: TLSError.self) { try RevocationList.parse(damaged) }
        }
    }

    @Test func aRevokedLeafIsRefusedAndItsIssuersOthersAreNot() throws {
        let lists = try Self.lists("east-revokes-checkout.pem", "west-empty.pem")
        #expect(rejection(try handshake(client: "certs-revoked/payments/checkout", lists: lists).server) == "revoked")
        let good = try handshake(lists: lists)
        #expect(good.server == .complete && good.client == .complete)
        // Without the list the same SVID is fine.
        #expect(try handshake(client: "certs-revoked/payments/checkout", lists: nil).server == .complete)
    }

    /// The root's list revokes east's intermediate: every east SVID is refused, west's are not.
    @Test func aRevokedIntermediateRefusesEverythingUnderIt() throws {
        let lists = try Self.lists("root-revokes-east.pem")
        #expect(rejection(try handshake(lists: lists).server) == "revoked")
        let bundle = try TrustBundle(pem: TestPKI.bytes("bundle-root.pem"), revocationLists: lists)
        #expect(bundle.revocation(of: try loadKey("certs-west/payments/audit").chain) == nil)
        #expect(bundle.revocation(of: try loadKey("certs-east/shop/frontend").chain) == "depth 1: certificate revoked")
    }

    /// A list in east's name that east did not sign revokes nothing; at a handshake it refuses
    /// (a list that cannot be trusted is not taken for "nothing revoked").
    @Test func aForgedListIsNotBelieved() throws {
        let lists = try Self.lists("forged-east.pem")
        #expect(rejection(try handshake(lists: lists).server) == "crl_invalid")
        let bundle = try TrustBundle(pem: TestPKI.bytes("bundle-root.pem"), revocationLists: lists)
        #expect(bundle.revocation(of: try loadKey("certs-east/payments/checkout").chain) == nil)
    }

    /// An open connection keeps the chain its peer presented, and a later list is checked against it.
    @Test func anOpenConnectionsChainIsCheckedAgainstALaterList() throws {
        let r = try handshake(client: "certs-revoked/payments/checkout", lists: [])
        #expect(r.server == .complete)
        #expect(r.pair.server.retainedPeerChain.count == 2 && r.pair.client.retainedPeerChain.isEmpty)
        let later = try TrustBundle(pem: TestPKI.bytes("bundle-root.pem"), revocationLists: try Self.lists("east-revokes-checkout.pem"))
        #expect(later.revocation(of: r.pair.server.retainedPeerChain) == "depth 0: certificate revoked")
        #expect(later.revocation(of: try loadKey("certs-east/payments/checkout").chain) == nil)
        // No lists configured: nothing is kept.
        #expect(try handshake(lists: nil).pair.server.retainedPeerChain.isEmpty)
    }

    /// A list changes the bundle's revocation fingerprint (a reload that changes only it is seen).
    @Test func theFingerprintFollowsTheLists() throws {
        let pem = try TestPKI.bytes("bundle-root.pem")
        let none = try TrustBundle(pem: pem, revocationLists: nil).revocationFingerprint
        let empty = try TrustBundle(pem: pem, revocationLists: []).revocationFingerprint
        let one = try TrustBundle(pem: pem, revocationLists: Self.lists("west-empty.pem")).revocationFingerprint
        let again = try TrustBundle(pem: pem, revocationLists: Self.lists("west-empty.pem")).revocationFingerprint
        #expect(none != empty && empty != one && one == again)
    }
}
