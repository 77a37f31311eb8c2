import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONETLS
@testable import HBONEProxy

/// Outbound routing without sockets: (source, destination) → HBONE route, plain TCP or a refusal
/// with its SOCKS5 code, over workload IPs, service VIPs and hostnames, port translation and self-loops.
@Suite struct OutboundPlanTests {
    static let yaml = """
    workloads:
    - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east}
    - {name: nocert-0, namespace: payments, serviceAccount: nocert, workloadIps: ["10.0.0.11"], protocol: HBONE, node: east}
    - name: ledger-0
      namespace: payments
      serviceAccount: ledger
      workloadIps: ["10.1.0.20"]
      protocol: HBONE
      node: west
      services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}
    - {name: legacy-0, namespace: payments, serviceAccount: legacy, workloadIps: ["10.1.0.30"], protocol: TCP, node: west}
    services:
    - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["10.96.0.20"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/ledger-canary"]}
    hbone:
      node: east
      rootCertificates: /unused
      certificates: {directory: /unused}
      listen: {socks5: 127.0.0.1:15080}
    """

    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")
    static let canary = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger-canary")

    func state() throws -> ProxyState {
        try testState(Self.yaml, certificates: [CertifiedKey(directory: TestPKI.path("certs-east/payments/checkout"))])
    }

    func plan(_ src: String, _ dst: String, hostname: String? = nil) throws -> OutboundPlan {
        let s = try state()
        let original = try #require(SocketAddress(dst))
        let d = hostname.map { s.resolve(hostname: $0, port: original.port) } ?? s.resolve(original)
        return s.planOutbound(src: SocketAddress(src)!, destination: d, original: original)
    }

    @Test func workloadIPGoesThroughHBONEAsTheSourceWorkload() throws {
        guard case let .hbone(source, proxy, authority, expected) = try plan("10.0.0.10:4000", "10.1.0.20:8080") else {
            Issue.record("not HBONE")
            return
        }
        #expect(source.name == "checkout-0")
        #expect(proxy == SocketAddress("10.1.0.20:15008"))
        #expect(authority == SocketAddress("10.1.0.20:8080"))
        #expect(expected == [Self.ledger])
    }

    @Test(arguments: [("10.96.0.20:80", nil), ("0.0.0.0:80", "ledger.payments.svc.cluster.local")] as [(String, String?)])
    func serviceVIPsAndHostnamesTranslateThePortAndAcceptTheServiceIdentities(dst: String, hostname: String?) throws {
        guard case let .hbone(_, proxy, authority, expected) = try plan("10.0.0.10:4000", dst, hostname: hostname) else {
            Issue.record("not HBONE")
            return
        }
        #expect(proxy == SocketAddress("10.1.0.20:15008"))
        #expect(authority == SocketAddress("10.1.0.20:8080"))
        #expect(expected == [Self.ledger, Self.canary])
    }

    @Test(arguments: [
        // (source, destination, expected plan)
        ("10.0.0.10:4000", "10.1.0.30:5432", OutboundPlan.direct(SocketAddress("10.1.0.30:5432")!)),          // a TCP workload
        ("10.0.0.10:4000", "203.0.113.7:443", .direct(SocketAddress("203.0.113.7:443")!)),                     // outside the mesh
        ("10.9.9.9:4000", "203.0.113.7:443", .direct(SocketAddress("203.0.113.7:443")!)),                      // passthrough needs no identity
        ("10.9.9.9:4000", "10.1.0.20:8080", .refuse(reason: "source 10.9.9.9 is not a workload on this node", socksCode: 2)),
        ("10.0.0.11:4000", "10.1.0.20:8080", .refuse(reason: "no certificate for spiffe://cluster.local/ns/payments/sa/nocert yet", socksCode: 1)),
        ("10.0.0.10:4000", "10.0.0.11:15008", .refuse(reason: "destination 10.0.0.11:15008 is the proxy itself", socksCode: 2)),  // a local workload
        ("10.0.0.10:4000", "127.0.0.1:15080", .refuse(reason: "destination 127.0.0.1:15080 is the proxy itself", socksCode: 2)),
        ("10.0.0.10:4000", "[::ffff:127.0.0.1]:15000", .refuse(reason: "destination 127.0.0.1:15000 is the proxy itself", socksCode: 2)),
        ("10.0.0.10:4000", "0.0.0.0:15021", .refuse(reason: "destination 0.0.0.0:15021 is the proxy itself", socksCode: 2)),
    ] as [(String, String, OutboundPlan)])
    func plans(src: String, dst: String, want: OutboundPlan) throws {
        #expect(try plan(src, dst) == want)
    }

    @Test func anUnknownHostnameIsRefusedAsUnreachable() throws {
        let s = try state()
        #expect(s.resolve(hostname: "nowhere.example", port: 80) == nil)
        #expect(s.planOutbound(src: SocketAddress("10.0.0.10:4000")!, destination: nil, original: SocketAddress("0.0.0.0:80")!)
                == .refuse(reason: "unknown destination 0.0.0.0:80", socksCode: 4))
    }
}
