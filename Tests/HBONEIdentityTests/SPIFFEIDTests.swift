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
