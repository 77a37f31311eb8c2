import Testing
@testable import HBONEIdentity

@Suite struct SPIFFEIDTests {
    @Test func roundTrip() throws {
        let id = try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
        #expect(id.trustDomain == "cluster.local")
        #expect(id.namespace == "payments")
        #expect(id.serviceAccount == "checkout")
        #expect(id.description == "spiffe://cluster.local/ns/payments/sa/checkout")
        #expect(id.principal == "cluster.local/ns/payments/sa/checkout")
        #expect(try SPIFFEID(parsing: id.description) == id)
    }

    /// The URI is written once and alone decides equality, the hash and the order: built from
    /// parts or parsed, the same ID must agree on all of them, and any part changed must differ.
    @Test func partsAndParsingAgree() throws {
        let text = "spiffe://cluster.local/ns/a-namespace-longer-than-fifteen-bytes/sa/checkout"
        let parsed = try SPIFFEID(parsing: text)
        let built = try SPIFFEID(trustDomain: "cluster.local", namespace: "a-namespace-longer-than-fifteen-bytes", serviceAccount: "checkout")
        #expect(built.uri == text && parsed.uri == text)
        #expect(built == parsed && built.hashValue == parsed.hashValue && Set([built, parsed]).count == 1)
        #expect(!(built < parsed) && !(parsed < built))
        #expect(built.principal == "cluster.local/ns/a-namespace-longer-than-fifteen-bytes/sa/checkout")
        #expect(built.withPrincipalBytes { Array($0) } == Array(built.principal.utf8))
        let others = [try SPIFFEID(trustDomain: "cluster.locan", namespace: "a-namespace-longer-than-fifteen-bytes", serviceAccount: "checkout"),
                      try SPIFFEID(trustDomain: "cluster.local", namespace: "a-namespace-longer-than-fifteen-byteS", serviceAccount: "checkout"),
                      try SPIFFEID(trustDomain: "cluster.local", namespace: "a-namespace-longer-than-fifteen-bytes", serviceAccount: "checkouT")]
        for other in others {
            #expect(other != built)
            #expect(other.hashValue != built.hashValue)   // a 64-bit hash: equal only by a broken one
            #expect((other < built) != (built < other))
        }
        #expect(Set(others + [built]).count == 4)
    }

    @Test(arguments: [
        "spiffe://td/ns/a/sa/b",
        "spiffe://my-mesh_1.example/ns/Team.A/sa/svc-1_x",
        "spiffe://cluster.local/ns/...a/sa/b..",
        "spiffe://cluster.local/ns/a-namespace-longer-than-fifteen-bytes/sa/an-account-longer-than-fifteen",
    ])
    func accepted(text: String) throws {
        #expect(try SPIFFEID(parsing: text).description == text)
    }

    @Test(arguments: [
        ("https://cluster.local/ns/a/sa/b", SPIFFEIDError.notSPIFFE),
        ("SPIFFE://cluster.local/ns/a/sa/b", .schemeNotLowercase),
        ("Spiffe://cluster.local/ns/a/sa/b", .schemeNotLowercase),
        ("spiffe:/cluster.local/ns/a/sa/b", .notSPIFFE),
        ("spiffe", .notSPIFFE),
        ("", .notSPIFFE),
        ("spiffe\u{1A}//cluster.local/ns/a/sa/b", .notSPIFFE),
        ("spiffe://cluster.local/ns/a/sa/b?x#y%", .hasQuery),
        ("spiffe://cluster.local/ns/a/sa/b#y%", .hasFragment),
        ("spiffe://user@cluster.local:80/ns/a/sa/b", .hasUserInfo),
        ("spiffe://cluster.local/ns/é/sa/b", .badPathCharacter),
        ("spiffe://clüster/ns/a/sa/b", .badTrustDomainCharacter),
        ("spiffe://cluster.local/sa/a/ns/b", .notIstioShape),
        ("spiffe://cluster.local/ns/a/sa", .notIstioShape),
        ("spiffe://Cluster.Local/ns/a/sa/b", .trustDomainNotLowercase),
        ("spiffe:///ns/a/sa/b", .emptyTrustDomain),
        ("spiffe://", .emptyTrustDomain),
        ("spiffe://cluster.local/ns//sa/b", .emptySegment),
        ("spiffe://cluster.local/ns/./sa/b", .dotSegment),
        ("spiffe://cluster.local/ns/../sa/b", .dotSegment),
        ("spiffe://cluster.local/ns/a%2Fb/sa/b", .percentEncoded),
        ("spiffe://cluster.local:8443/ns/a/sa/b", .hasPort),
        ("spiffe://user@cluster.local/ns/a/sa/b", .hasUserInfo),
        ("spiffe://cluster.local/ns/a/sa/b?x=1", .hasQuery),
        ("spiffe://cluster.local/ns/a/sa/b#frag", .hasFragment),
        ("spiffe://cluster.local/ns/a/sa/b/", .trailingSlash),
        ("spiffe://cluster.local/workload/a", .notIstioShape),
        ("spiffe://cluster.local/ns/a/sa/b/extra", .notIstioShape),
        ("spiffe://cluster.local/namespace/a/sa/b", .notIstioShape),
        ("spiffe://cluster.local", .notIstioShape),
        ("spiffe://cluster.local/ns/a b/sa/c", .badPathCharacter),
        ("spiffe://clus$ter/ns/a/sa/b", .badTrustDomainCharacter),
        ("spiffe://cluster.local/ns/" + String(repeating: "a", count: 2100) + "/sa/b", .tooLong),
    ])
    func rejected(text: String, error: SPIFFEIDError) {
        #expect(throws: error) { try SPIFFEID(parsing: text) }
    }
}
