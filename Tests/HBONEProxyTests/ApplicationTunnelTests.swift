import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEH2
@testable import HBONEProxy

/// A waypoint enrolled in the mesh behind this proxy (ztunnel's application tunnels and "waypoint
/// sandwich"): which CONNECTs it takes, where their bytes go, and the PROXY header in front of them.
@Suite struct ApplicationTunnelTests {
    static let yaml = """
    workloads:
    - {name: waypoint-0, namespace: payments, serviceAccount: waypoint, workloadIps: ["10.1.0.30"], protocol: HBONE, node: west,
       applicationTunnel: {protocol: PROXY, port: 15088}, services: {"payments/waypoint.payments.svc.cluster.local": {15008: 15008}}}
    - {name: sandwich-0, namespace: payments, serviceAccount: sandwich, workloadIps: ["10.1.0.31"], protocol: HBONE, node: west}
    - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, node: east,
       services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}}
    - {name: vault-0, namespace: payments, serviceAccount: vault, workloadIps: ["10.1.0.22"], protocol: HBONE, node: east,
       waypoint: {destination: "/10.1.0.31"}}
    - {name: plain-0, namespace: payments, serviceAccount: plain, workloadIps: ["10.1.0.23"], protocol: HBONE, node: east}
    services:
    - {name: ledger, namespace: payments, vips: ["fd00::20", "10.96.0.20"], ports: {"80": 8080},
       waypoint: {destination: "payments/waypoint.payments.svc.cluster.local"}}
    - {name: waypoint, namespace: payments, vips: ["10.96.0.30"], ports: {"15008": 15008}}
    policies:
    - name: deny-tunnel-port
      namespace: payments
      action: Deny
      selector: {matchLabels: {}}
      rules:
      - - - destinationPorts: [15089]
    hbone:
      node: west
      rootCertificates: /unused
      certificates: {directory: /unused}
      listen: {admin: 127.0.0.1:15000, metrics: 0.0.0.0:15020, readiness: 0.0.0.0:15021}
    """

    static let waypoint = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/waypoint")
    static let sandwich = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/sandwich")
    static let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
    static let client = SocketAddress("10.0.0.10:40000")!

    static func admit(_ authority: String, at local: String, as identity: SPIFFEID, yaml: String = yaml, pod: Bool = false) throws -> InboundAdmission {
        let state = try testState(yaml)
        let reached = state.localWorkloadsByIP[SocketAddress(local)!.ip]
        return InboundAdmission(headers: [H2Header(":method", "CONNECT"), H2Header(":authority", authority)], endStream: false, source: client,
                                connection: .init(peerIdentity: checkout, localAddress: SocketAddress(local)!, localIdentity: identity,
                                                  podWorkload: pod ? reached : nil),
                                state: state)
    }

    /// Bytes laid out by hand from HAProxy's proxy-protocol.txt, section 2.2.
    @Test func theHeaderIsVersionTwoWithTheIdentityTLV() throws {
        let id = try SPIFFEID(parsing: "spiffe://td/ns/a/sa/b")
        let h = ProxyProtocolHeader(source: SocketAddress("10.0.0.10:40000")!, destination: SocketAddress("10.96.0.20:80")!, sourceIdentity: id)
        let tlv: [UInt8] = [0xD0, 0x00, 0x15] + Array("spiffe://td/ns/a/sa/b".utf8)
        let want: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, UInt8(12 + tlv.count),
                             10, 0, 0, 10, 10, 96, 0, 20, 0x9C, 0x40, 0x00, 0x50] + tlv
        #expect(h.bytes == want)
    }

    @Test func anIPv6PairAndAMixedPairGoAsIPv6() {
        let v6 = ProxyProtocolHeader(source: SocketAddress("[fd00::1]:1")!, destination: SocketAddress("[fd00::2]:2")!, sourceIdentity: nil).bytes
        #expect(Array(v6[12..<16]) == [0x21, 0x21, 0x00, 36])
        #expect(v6.count == 16 + 36)
        #expect(Array(v6[16..<32]) == [0xfd, 0] + Array(repeating: 0, count: 13) + [1])
        #expect(Array(v6[48..<52]) == [0, 1, 0, 2])
        let mixed = ProxyProtocolHeader(source: SocketAddress("10.0.0.1:1")!, destination: SocketAddress("[fd00::2]:2")!, sourceIdentity: nil).bytes
        #expect(mixed[13] == 0x21)
        #expect(Array(mixed[16..<32]) == Array(repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1])
    }

    /// The waypoint's tunnels name the service the client dialled: taken, sent to the tunnel's
    /// port at the waypoint's address, behind a header naming the client, the service and its SVID.
    @Test func aWaypointWithAProxyTunnelTakesTunnelsForWhatItFronts() throws {
        let a = try Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint)
        #expect(a.outcome == .accept, "\(a.outcome)")
        #expect(a.workload?.name == "waypoint-0")
        #expect(a.authority == SocketAddress("10.96.0.20:80"))
        #expect(a.upstream == SocketAddress("10.1.0.30:15088"))
        #expect(a.proxyHeader == ProxyProtocolHeader(source: Self.client, destination: SocketAddress("10.96.0.20:80")!, sourceIdentity: Self.checkout))
        #expect(!a.upstreamOnLoopback)
    }

    /// In a pod's namespace the tunnel goes to the pod's loopback, unless LOCALHOST_APP_TUNNEL is false.
    @Test func inPodTheTunnelIsDeliveredOnLoopback() throws {
        let inPod = Self.yaml.replacingOccurrences(of: "  node: west\n", with: "  node: west\n  inpod: {uds: /unused.sock}\n")
        #expect(try Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: inPod, pod: true).upstreamOnLoopback)
        let off = inPod.replacingOccurrences(of: "{uds: /unused.sock}", with: "{uds: /unused.sock, localhostAppTunnel: false}")
        #expect(try !Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: off, pod: true).upstreamOnLoopback)
    }

    /// PROXY carries no hostnames: a service named by hostname goes as its IPv4 VIP.
    @Test func aServiceByHostnameIsNamedByItsVIP() throws {
        let yaml = Self.yaml.replacingOccurrences(of: "{15008: 15008}}}", with: "{15008: 15008}, \"payments/ledger.payments.svc.cluster.local\": {80: 8080}}}")
        let a = try Self.admit("ledger.payments.svc.cluster.local:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: yaml)
        #expect(a.outcome == .accept, "\(a.outcome)")
        #expect(a.upstream == SocketAddress("10.1.0.30:15088"))
        #expect(a.proxyHeader?.destination == SocketAddress("10.96.0.20:80"))
    }

    /// Without a PROXY header, the tunnel's bytes go as they came, to its port unless one is set.
    @Test func aTunnelWithoutProxyIsPlain() throws {
        let none = Self.yaml.replacingOccurrences(of: "{protocol: PROXY, port: 15088}", with: "{protocol: NONE}")
        let a = try Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: none)
        #expect(a.outcome == .accept, "\(a.outcome)")
        #expect(a.upstream == SocketAddress("10.1.0.30:80"))
        #expect(a.proxyHeader == nil)
    }

    /// The status and reason of a refusal; nil for an accept.
    static func refusal(_ a: InboundAdmission) -> (status: Int, reason: String)? {
        guard case let .refuse(status, _, reason) = a.outcome else { return nil }
        return (status, reason)
    }

    /// Policies see where the bytes go: the waypoint at its tunnel's port.
    @Test func policiesSeeTheTunnelsPort() throws {
        let denied = Self.yaml.replacingOccurrences(of: "port: 15088}", with: "port: 15089}")
        let r = Self.refusal(try Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: denied))
        #expect(r?.status == 401 && r?.reason.contains("payments/deny-tunnel-port") == true, "\(String(describing: r))")
    }

    /// A tunnel port that is the proxy's own would loop back into it.
    @Test func aTunnelPortOfTheProxysOwnIsRefused() throws {
        let loop = Self.yaml.replacingOccurrences(of: "port: 15088}", with: "port: 15008}")
        let r = Self.refusal(try Self.admit("10.96.0.20:80", at: "10.1.0.30:15008", as: Self.waypoint, yaml: loop))
        #expect(r?.status == 400 && r?.reason.contains("port 15008 is one of the proxy's own") == true, "\(String(describing: r))")
    }

    /// A waypoint without a tunnel takes tunnels for what names it as its waypoint, delivered to
    /// its own address; anything else at its address is still refused.
    @Test func aWaypointWithoutATunnelTakesOnlyWhatItFronts() throws {
        let a = try Self.admit("10.1.0.22:9000", at: "10.1.0.31:15008", as: Self.sandwich)
        #expect(a.outcome == .accept, "\(a.outcome)")
        #expect(a.upstream == SocketAddress("10.1.0.31:9000"))
        #expect(a.proxyHeader == nil)
        for other in ["10.1.0.23:9000", "10.96.0.20:80", "192.0.2.1:80"] {
            let r = Self.refusal(try Self.admit(other, at: "10.1.0.31:15008", as: Self.sandwich))
            #expect(r?.status == 503 && r?.reason.contains("is not a workload on this node") == true, "\(other): \(String(describing: r))")
        }
    }
}

/// The same through both proxies on the in-memory network: ledger-0 is a waypoint with a PROXY
/// tunnel on 15088, in front of a service at 10.96.0.20.
@Suite struct ApplicationTunnelPathTests {
    static func withWaypointService(_ c: inout ProxyConfig) {
        var s = Service(name: "reports", namespace: "payments", hostname: "reports.payments.svc.cluster.local",
                        addresses: [NetworkAddress(network: "", ip: IPAddress("10.96.0.20")!)], ports: [80: 8080], subjectAltNames: [])
        s.waypoint = GatewayAddress(destinationText: "/10.1.0.20", hboneMtlsPort: 15008)
        c.services.append(s)
    }

    static func withTunnel(_ c: inout ProxyConfig) {
        withWaypointService(&c)
        c.workloads[1].applicationTunnel = ApplicationTunnel(protocol: .proxy, port: 15088)
    }

    /// The header comes first, once, then the client's bytes; a later snapshot (nothing changed
    /// for this tunnel) keeps it open: it is judged at the waypoint's address, not the service's
    /// VIP its CONNECT named (which is no local workload).
    @Test func theHeaderPrecedesTheBytesAndAReloadKeepsTheTunnel() throws {
        let mesh = try InMemoryMesh(eastChange: Self.withWaypointService, westChange: Self.withTunnel)
        try mesh.serve(port: 15088)
        let app = mesh.connect(to: "10.96.0.20:80")
        app.send("hello")
        mesh.run()
        let header = ProxyProtocolHeader(source: SocketAddress(ip: InMemoryMesh.checkoutIP, port: 0), destination: SocketAddress("10.96.0.20:80")!,
                                         sourceIdentity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")).bytes
        // The echo server returns the header too: everything but the client's port is known.
        #expect(app.received.count == header.count + 5, "\(app.received.count)")
        #expect(Array(app.received.prefix(28)).enumerated().allSatisfy { $0.offset == 24 || $0.offset == 25 || $0.element == header[$0.offset] })
        #expect(Array(app.received.suffix(5)) == Array("hello".utf8))
        mesh.west.update(try mesh.westState { Self.withTunnel(&$0) })
        mesh.run()
        app.send("again")
        mesh.run()
        #expect(Array(app.received.suffix(10)) == Array("helloagain".utf8), "\(mesh.westRecords.map { $0.error.map { "\($0)" } ?? "-" })")
        #expect(mesh.westRecords.isEmpty)
    }
}
