import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEH2
import HBONETLS
@testable import HBONEProxy

/// Every answer of inbound admission, without a socket: the reference's 400/401/503 cases and an accept.
@Suite struct InboundAdmissionTests {
    static let yaml = """
    workloads:
    - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, node: west,
       services: {"payments/ledger.payments.svc.cluster.local": {80: 8080, 82: 9000}}}
    - {name: audit-0, namespace: payments, serviceAccount: audit, workloadIps: ["10.1.0.21"], protocol: HBONE, node: west,
       services: {"payments/audit.payments.svc.cluster.local": {80: 8080}}}
    - {name: remote-0, namespace: payments, serviceAccount: remote, workloadIps: ["10.2.0.9"], protocol: HBONE, node: east}
    services:
    - {name: ledger, namespace: payments, vips: ["10.96.0.20"], ports: {"80": 8080, "82": 9000, "83": 0}}
    - {name: audit, namespace: payments, vips: ["10.96.0.21"], ports: {"80": 8080}}
    policies:
    - name: deny-9000
      namespace: payments
      action: Deny
      rules:
      - - - destinationPorts: [9000]
    hbone:
      node: west
      rootCertificates: /unused
      certificates: {directory: /unused}
      listen: {admin: 127.0.0.1:15000, metrics: 0.0.0.0:15020, readiness: 0.0.0.0:15021}
    """

    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")
    static let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var headers: [(String, String)]
        var endStream = false
        /// nil: admitted.
        var status: Int?
        var reason = ""
        var description: String { name }
    }

    static func connect(_ authority: String) -> [(String, String)] { [(":method", "CONNECT"), (":authority", authority)] }

    @Test(arguments: [
        Case(name: "accept", headers: connect("10.1.0.20:8080"), status: nil),
        Case(name: "accept, mapped spelling", headers: connect("[::ffff:10.1.0.20]:8080"), status: nil),
        Case(name: "GET", headers: [(":method", "GET"), (":authority", "10.1.0.20:8080")], status: 400, reason: "method GET is not CONNECT"),
        Case(name: "no method", headers: [(":authority", "10.1.0.20:8080")], status: 400, reason: "method missing is not CONNECT"),
        Case(name: ":path", headers: connect("10.1.0.20:8080") + [(":path", "/")], status: 400, reason: "must not carry :scheme or :path"),
        Case(name: ":scheme", headers: connect("10.1.0.20:8080") + [(":scheme", "https")], status: 400, reason: "must not carry :scheme or :path"),
        Case(name: "no port", headers: connect("10.1.0.20"), status: 400, reason: "missing port"),
        Case(name: "bad hostname", headers: connect("led ger:8080"), status: 400, reason: "bad :authority"),
        Case(name: "bad port", headers: connect("ledger.payments.svc.cluster.local:0"), status: 400, reason: "bad :authority"),
        // A service by hostname (what an east-west gateway forwards): the workload at the
        // connection's address, if it is an endpoint, on the port the service maps to.
        Case(name: "service hostname", headers: connect("ledger.payments.svc.cluster.local:80"), status: nil),
        Case(name: "service hostname, upper case", headers: connect("Ledger.Payments.svc.cluster.local:80"), status: nil),
        Case(name: "unknown service", headers: connect("ledger:8080"), status: 503, reason: "no service ledger"),
        Case(name: "not an endpoint", headers: connect("audit.payments.svc.cluster.local:80"), status: 400,
             reason: "payments/ledger-0 is not an endpoint of audit.payments.svc.cluster.local"),
        Case(name: "no such service port", headers: connect("ledger.payments.svc.cluster.local:99"), status: 400,
             reason: "service payments/ledger.payments.svc.cluster.local has no port 99"),
        Case(name: "service port, END_STREAM", headers: connect("ledger.payments.svc.cluster.local:80"), endStream: true, status: 400,
             reason: "CONNECT with END_STREAM"),
        Case(name: "service port onto a denied port", headers: connect("ledger.payments.svc.cluster.local:82"), status: 401,
             reason: "DENY policy payments/deny-9000 matched"),
        Case(name: "END_STREAM", headers: connect("10.1.0.20:8080"), endStream: true, status: 400, reason: "CONNECT with END_STREAM"),
        Case(name: "not on this node", headers: connect("10.2.0.9:8080"), status: 503, reason: "is not a workload on this node"),
        Case(name: "unknown address", headers: connect("192.0.2.1:8080"), status: 503, reason: "is not a workload on this node"),
        Case(name: "another local workload", headers: connect("10.1.0.21:8080"), status: 400, reason: "is not this connection's destination"),
        Case(name: "the proxy's HBONE port", headers: connect("10.1.0.20:15008"), status: 400, reason: "one of the proxy's own"),
        Case(name: "the proxy's admin port", headers: connect("10.1.0.20:15000"), status: 400, reason: "one of the proxy's own"),
        Case(name: "policy deny", headers: connect("10.1.0.20:9000"), status: 401, reason: "DENY policy payments/deny-9000 matched"),
    ])
    func admission(c: Case) throws {
        let state = try testState(Self.yaml)
        let a = InboundAdmission(headers: c.headers.map { H2Header($0.0, $0.1) }, endStream: c.endStream, source: SocketAddress("10.0.0.10:40000")!,
                                 connection: .init(peerIdentity: Self.checkout, localAddress: SocketAddress("10.1.0.20:15008")!,
                                                   localIdentity: Self.ledger),
                                 state: state)
        switch (a.outcome, c.status) {
        case (.accept, nil):
            #expect(a.authority == SocketAddress("10.1.0.20:8080"))
            #expect(a.workload?.name == "ledger-0")
            #expect(a.service?.name == (c.name.hasPrefix("service") ? "ledger" : nil))
            #expect(a.serviceTarget == (c.name.hasPrefix("service") ? "ledger.payments.svc.cluster.local:80" : nil))
        case let (.refuse(status, _, reason), want?):
            #expect(status == want)
            #expect(reason.contains(c.reason), "\(reason)")
        default:
            Issue.record("\(c.name): \(a.outcome)")
        }
    }

    /// A service port whose target is 0 is the service port itself (as outbound translates it).
    @Test func aServiceTargetPortOfZeroIsTheServicePort() throws {
        let state = try testState(Self.yaml.replacingOccurrences(of: "{80: 8080, 82: 9000}", with: "{80: 8080, 82: 9000, 83: 0}"))
        let w = try #require(state.localWorkloadsByIP[IPAddress("10.1.0.20")!])
        #expect(state.serviceTarget(of: w, hostname: "ledger.payments.svc.cluster.local", port: 83) == .target(state.servicesByKey["payments/ledger.payments.svc.cluster.local"]!, port: 83))
    }

    /// A connection made to one workload's SVID cannot carry tunnels for another workload, even
    /// where a single listener serves every workload (the identity check then decides).
    @Test func identityMismatchOnASharedListener() throws {
        let shared = Self.yaml.replacingOccurrences(of: "  listen: {", with: "  listen: {inbound: 10.1.0.1:15008, ")
        let state = try testState(shared)
        let a = InboundAdmission(headers: Self.connect("10.1.0.21:8080").map { H2Header($0.0, $0.1) }, endStream: false,
                                 source: SocketAddress("10.0.0.10:40000")!,
                                 connection: .init(peerIdentity: Self.checkout, localAddress: SocketAddress("10.1.0.1:15008")!, localIdentity: Self.ledger),
                                 state: state)
        guard case let .refuse(status, _, reason) = a.outcome else {
            Issue.record("admitted")
            return
        }
        #expect(status == 400)
        #expect(reason.contains("belongs to spiffe://cluster.local/ns/payments/sa/audit, not spiffe://cluster.local/ns/payments/sa/ledger"))
    }
}
