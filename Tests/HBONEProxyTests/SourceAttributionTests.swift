import Testing
import HBONECore
import HBONEIdentity
import HBONEConfig
@testable import HBONEProxy

/// `forwarded` is believed only where the peer may speak for the claimed address.
@Suite struct SourceAttributionTests {
    static let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

    static func workloads() throws -> [IPAddress: Workload] {
        let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east}
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.0.0.20"], protocol: HBONE, node: west}
        hbone: {node: west, rootCertificates: /unused, certificates: {directory: /unused}}
        """
        let config = try ProxyConfig.parse(yaml: yaml, file: "a.yaml")
        var byIP: [IPAddress: Workload] = [:]
        for w in config.workloads { for ip in w.workloadIps { byIP[ip] = w } }
        return byIP
    }

    struct Case: Sendable, CustomStringConvertible {
        var forwarded: String?
        var identity: SPIFFEID?
        var src: String
        var workload: String?
        var rejected: Bool
        var description: String { "\(forwarded ?? "none") as \(identity?.description ?? "nobody")" }
    }

    // The peer is the east node proxy at 192.0.2.1:40000.
    @Test(arguments: [
        // A node proxy speaking for its own pod: believed.
        Case(forwarded: "for=\"10.0.0.10:5555\"", identity: checkout, src: "10.0.0.10:5555", workload: "checkout-0", rejected: false),
        Case(forwarded: "for=\"[::ffff:10.0.0.10]:5555\"", identity: checkout, src: "10.0.0.10:5555", workload: "checkout-0", rejected: false),
        Case(forwarded: "For=10.0.0.10:5555;proto=http", identity: checkout, src: "10.0.0.10:5555", workload: "checkout-0", rejected: false),
        Case(forwarded: " for = \"10.0.0.10:5555\" ;proto=http, for=10.0.0.20:1", identity: checkout, src: "10.0.0.10:5555", workload: "checkout-0", rejected: false),
        Case(forwarded: "proto=http;\tfor=\t10.0.0.10:5555\t", identity: checkout, src: "10.0.0.10:5555", workload: "checkout-0", rejected: false),
        Case(forwarded: "for=\"\"", identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: true),
        // Another workload's address: ignored, the connection's own address stands.
        Case(forwarded: "for=\"10.0.0.20:5555\"", identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: true),
        // An address outside the mesh (to dodge an ipBlocks DENY): ignored.
        Case(forwarded: "for=\"203.0.113.9:1\"", identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: true),
        // No identity can claim anything.
        Case(forwarded: "for=\"10.0.0.10:5555\"", identity: nil, src: "192.0.2.1:40000", workload: nil, rejected: true),
        // Garbage and obfuscated identifiers are claims we cannot believe.
        Case(forwarded: "for=_hidden", identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: true),
        Case(forwarded: "by=10.0.0.10:1", identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: true),
        // The peer's own address: fine (it adds only the port).
        Case(forwarded: "for=\"192.0.2.1:7777\"", identity: checkout, src: "192.0.2.1:7777", workload: nil, rejected: false),
        // No header: the peer.
        Case(forwarded: nil, identity: checkout, src: "192.0.2.1:40000", workload: nil, rejected: false),
    ])
    func attribution(c: Case) throws {
        let a = SourceAttribution(peer: SocketAddress("192.0.2.1:40000")!, peerIdentity: c.identity, forwarded: c.forwarded,
                                  workloadsByIP: try Self.workloads())
        #expect(a.src.description == c.src)
        #expect(a.workload?.name == c.workload)
        #expect((a.rejectedClaim != nil) == c.rejected)
    }

    @Test func aWorkloadConnectingDirectlyIsAttributedOnlyUnderItsOwnIdentity() throws {
        let byIP = try Self.workloads()
        let own = SourceAttribution(peer: SocketAddress("10.0.0.10:1234")!, peerIdentity: Self.checkout, forwarded: nil, workloadsByIP: byIP)
        #expect(own.workload?.name == "checkout-0")
        let other = SourceAttribution(peer: SocketAddress("10.0.0.10:1234")!, peerIdentity: Self.ledger, forwarded: nil, workloadsByIP: byIP)
        #expect(other.workload == nil)
    }

    /// ztunnel's `host=`: the first element's, any case, quoted or not; the `for=` is unaffected.
    @Test(arguments: [
        ("for=\"10.0.0.10:5555\";host=ledger.payments.svc.cluster.local", "ledger.payments.svc.cluster.local"),
        ("for=\"10.0.0.10:5555\"; Host=\"ledger.payments\"", "ledger.payments"),
        ("host=a;for=10.0.0.10:1, host=b", "a"),
        ("for=\"10.0.0.10:5555\"", nil), ("for=1.2.3.4:5;host=", nil), ("for=1.2.3.4:5;host=\"\"", nil), (", host=b", "b"),
        ("for=1.2.3.4:5;hostname=x", nil),
        // Pairs without `=`, a key that only shares a prefix, a lone quote, the value's own
        // spaces and non-ASCII bytes beside the delimiters.
        ("junk;ho=x;HOST\t=\t\"a b\"\t;for=1.2.3.4:5", "a b"), ("host=\"", "\""), (",,,host=é;x", "é"), ("host=ü", "ü"),
        ("host=x,", "x"), (";;host=y;;", "y"), ("", nil), (",", nil), ("host", nil),
    ] as [(String, String?)])
    func forwardedHostIsTheFirstElementsHost(header: String, host: String?) {
        #expect(SourceAttribution.forwardedHost(header).map(String.init) == host, "\(header)")
        if header.hasPrefix("for=\"10.0.0.10:5555\"") { #expect(SourceAttribution.forwardedFor(header) == SocketAddress("10.0.0.10:5555")) }
    }
}
