import Testing
import HBONEIdentity
import HBONETestSupport
@testable import HBONETLS

/// The SVID rules on a leaf's facts (what a verified-chain cache hit applies), without certificates.
@Suite struct LeafFactsTests {
    let svid = LeafFacts(sanCount: 1, uris: ["spiffe://cluster.local/ns/payments/sa/checkout"], isCA: false,
                         allowsDigitalSignature: true, allowsClientAuth: true, allowsServerAuth: true)

    @Test func factsReadFromAnSVIDMatchTheCertificate() throws {
        let facts = LeafFacts(try loadKey("certs-east/payments/checkout").leaf)
        #expect(facts.uris == [checkout.description])
        #expect(facts.sanCount >= 1 && !facts.isCA && facts.allowsDigitalSignature && facts.allowsClientAuth)
        #expect(PeerVerification.inbound(trustDomains: ["cluster.local"]).check(facts) == .success(checkout))
    }

    /// Every URI SAN is read, a NUL and all: it counts, and it fails as a SPIFFE ID.
    @Test func aURIWithANulIsReadNotSkipped() throws {
        let alone = LeafFacts(try loadKey("bad/nul-in-uri").leaf)
        #expect(alone.uris == ["spiffe://cluster.local/ns/payments/sa/checkout\u{0}.evil"])
        let beside = LeafFacts(try loadKey("bad/nul-uri-beside-valid-uri").leaf)
        #expect(beside.uris.count == 2)
        #expect(PeerVerification.outbound(expected: [checkout]).check(beside) == .failure(.multipleURISANs(2)))
        guard case let .failure(rejection) = PeerVerification.inbound(trustDomains: ["cluster.local"]).check(alone) else {
            Issue.record("a URI with a NUL was accepted")
            return
        }
        // The reason shows the NUL escaped, not raw.
        #expect(rejection.description.contains("checkout\\u0000.evil"))
        // Nor is such a leaf taken as our own SVID (a CA's answer goes through the same check).
        #expect(throws: TLSError.self) { try CertifiedKey(directory: TestPKI.path("bad/nul-uri-beside-valid-uri")) }
        #expect(throws: TLSError.self) { try CertifiedKey(directory: TestPKI.path("bad/nul-in-uri")) }
    }

    @Test func eachRuleRefusesOnFacts() {
        let inbound = PeerVerification.inbound(trustDomains: ["cluster.local"])
        var f = svid
        f.sanCount = 0
        f.uris = []
        #expect(inbound.check(f) == .failure(.noSAN))
        f.sanCount = 1
        #expect(inbound.check(f) == .failure(.noURISAN))
        f = svid
        f.isCA = true
        #expect(inbound.check(f) == .failure(.leafIsCA))
        f = svid
        f.allowsDigitalSignature = false
        #expect(inbound.check(f) == .failure(.missingDigitalSignature))
        f = svid
        f.allowsClientAuth = false
        #expect(inbound.check(f) == .failure(.missingClientAuth))
        #expect(PeerVerification.inbound(trustDomains: ["other.local"]).check(svid) == .failure(.untrustedTrustDomain("cluster.local")))
        f = svid
        f.allowsServerAuth = false
        #expect(PeerVerification.outbound(expected: [checkout]).check(f) == .failure(.missingServerAuth))
        #expect(PeerVerification.outbound(expected: [ledger]).check(svid) == .failure(.unexpectedIdentity(got: checkout, expected: [ledger])))
        #expect(PeerVerification.outbound(expected: [checkout]).check(svid) == .success(checkout))
    }
}
