import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONETLS
@testable import HBONEProxy

/// Services on other networks, through their east-west gateways (double HBONE), in the shape
/// istiod sends them: per remote network and service, a workload without an address that names
/// the network's gateway and lists the service, and the gateway's own workload at that address.
@Suite struct NetworkGatewayTests {
    /// This proxy (node `east`, network `net-a`) holds `checkout-0`. `ledger` is only on `net-b`,
    /// behind its gateway; `audit` behind a gateway named by hostname; the others show what is refused.
    static let yaml = """
    workloads:
    - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east, network: net-a}
    \(standIn("ledger", service: "ledger.payments.svc.cluster.local", gateway: #"{destination: "net-b/203.0.113.7", hboneMtlsPort: 15009}"#))
    - uid: net-b/eastwest
      name: eastwest
      namespace: istio-system
      serviceAccount: istio-eastwestgateway
      workloadIps: ["203.0.113.7"]
      network: net-b
      protocol: HBONE
    \(standIn("audit", service: "audit.payments.svc.cluster.local", network: "net-c", gateway: #"{destination: "istio-system/gateway.net-c.example"}"#))
    - {name: gateway-c-0, namespace: istio-system, serviceAccount: gateway-c, workloadIps: ["10.0.0.99"], protocol: HBONE, network: net-a,
       services: {"istio-system/gateway.net-c.example": {15008: 15008}}}
    - {name: report-b, namespace: payments, serviceAccount: report, workloadIps: ["10.9.0.40"], protocol: HBONE, network: net-b,
       services: {"payments/report.payments.svc.cluster.local": {80: 8080}}}
    \(standIn("unsigned", service: "unsigned.payments.svc.cluster.local", gateway: #"{destination: "net-b/203.0.113.7"}"#))
    \(standIn("waypoint", service: "waypoint.payments.svc.cluster.local", gateway: #"{destination: "net-b/203.0.113.7", hboneMtlsPort: 15009}"#, port: 15008))
    - {name: gated-0, namespace: payments, serviceAccount: gated, workloadIps: ["10.0.0.40"], protocol: HBONE, network: net-a,
       waypoint: {destination: "payments/waypoint.payments.svc.cluster.local"}}
    \(standIn("odd", service: "odd host\\r\\nx: y", gateway: #"{destination: "net-b/203.0.113.7"}"#))
    \(standIn("lost", service: "lost.payments.svc.cluster.local", gateway: #"{destination: "net-b/203.0.113.99"}"#))
    services:
    - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["net-a/10.96.0.20"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/ledger"]}
    - {name: audit, namespace: payments, hostname: audit.payments.svc.cluster.local, vips: ["net-a/10.96.0.30"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/audit"]}
    - {name: gateway-c, namespace: istio-system, hostname: gateway.net-c.example, vips: ["net-a/10.96.0.99"], ports: {"15008": 15008},
       subjectAltNames: ["spiffe://cluster.local/ns/istio-system/sa/gateway-c-canary"]}
    - {name: report, namespace: payments, hostname: report.payments.svc.cluster.local, vips: ["net-a/10.96.0.40"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/report"]}
    - {name: unsigned, namespace: payments, hostname: unsigned.payments.svc.cluster.local, vips: ["net-a/10.96.0.50"], ports: {"80": 8080}}
    - {name: lost, namespace: payments, hostname: lost.payments.svc.cluster.local, vips: ["net-a/10.96.0.60"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/lost"]}
    - {name: odd, namespace: payments, hostname: "odd host\\r\\nx: y", vips: ["net-a/10.96.0.90"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/odd"]}
    - {name: waypoint, namespace: payments, hostname: waypoint.payments.svc.cluster.local, vips: ["net-a/10.96.0.70"], ports: {"15008": 15008},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/waypoint"]}
    - {name: gated, namespace: payments, hostname: gated.payments.svc.cluster.local, vips: ["net-a/10.96.0.80"], ports: {"80": 8080},
       subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/gated"], waypoint: {destination: "payments/waypoint.payments.svc.cluster.local"}}
    hbone:
      node: east
      network: net-a
      rootCertificates: /unused
      certificates: {directory: /unused}
    """

    /// istiod's stand-in for a service's endpoints on another network: no address, the gateway named.
    static func standIn(_ name: String, service: String, network: String = "net-b", gateway: String, port: Int = 80) -> String {
        """
        - {uid: \(network)/\(name)-behind-gateway, name: \(name)-behind-gateway, namespace: payments, network: \(network), protocol: HBONE,
           networkGateway: \(gateway), services: {"payments/\(service)": {\(port): \(port == 80 ? 8080 : port)}}}
        """
    }

    static func id(_ text: String) -> SPIFFEID { try! SPIFFEID(parsing: "spiffe://cluster.local/ns/\(text)") }

    func state(_ yaml: String = Self.yaml) throws -> ProxyState {
        try testState(yaml, certificates: [CertifiedKey(directory: TestPKI.path("certs-east/payments/checkout"))])
    }

    /// ztunnel's request through a gateway: the outer tunnel to the gateway's workload at its HBONE
    /// port, expecting the gateway's identity; both CONNECTs name the service and the port the
    /// client addressed; the inner tunnel expects the service's subject alt names. By VIP, by
    /// hostname (SOCKS5), and as the plan the worker carries out.
    @Test func aServiceOnlyOnAnotherNetworkIsReachedThroughItsGateway() throws {
        let s = try state()
        let want = GatewayRoute(gateway: SocketAddress("203.0.113.7:15009")!, gatewayIdentities: [Self.id("istio-system/sa/istio-eastwestgateway")],
                                target: "ledger.payments.svc.cluster.local:80", identities: [Self.id("payments/sa/ledger")])
        let d = try #require(s.resolve(SocketAddress("10.96.0.20:80")!))
        #expect(d.route == .throughGateway(want))
        #expect(d.workload?.name == "eastwest")
        #expect(d.service?.name == "ledger")
        #expect(s.resolve(hostname: "ledger.payments.svc.cluster.local", port: 80)?.route == .throughGateway(want))
        let plan = s.planOutbound(src: SocketAddress("10.0.0.10:4000")!, destination: d, original: SocketAddress("10.96.0.20:80")!)
        guard case let .throughGateway(source, route) = plan else {
            Issue.record("planned \(plan)")
            return
        }
        #expect(source.name == "checkout-0")
        #expect(route == want)
        // Only a local workload with a certificate sends through a gateway, as any HBONE.
        guard case .refuse = s.planOutbound(src: SocketAddress("10.0.0.77:4000")!, destination: d, original: SocketAddress("10.96.0.20:80")!) else {
            Issue.record("a source that is no workload here was sent through the gateway")
            return
        }
    }

    /// A gateway named by hostname is a service: dialled at one of its endpoints here, on the
    /// gateway's HBONE port, which may present the endpoint's identity or the service's names.
    @Test func aGatewayNamedByHostnameIsReachedThroughTheServiceOfThatName() throws {
        let d = try #require(try state().resolve(SocketAddress("10.96.0.30:80")!))
        #expect(d.route == .throughGateway(GatewayRoute(
            gateway: SocketAddress("10.0.0.99:15008")!,
            gatewayIdentities: [Self.id("istio-system/sa/gateway-c"), Self.id("istio-system/sa/gateway-c-canary")],
            target: "audit.payments.svc.cluster.local:80", identities: [Self.id("payments/sa/audit")])))
    }

    /// As in ztunnel, a service's endpoints here and its stand-ins behind gateways are one set,
    /// weighted by capacity (istiod gives a stand-in the count of endpoints it stands for): 1 of 4
    /// connections stays here when 3 endpoints are behind the gateway. A service that prefers
    /// its own network (PreferClose: Failover, Network first) keeps them all here.
    @Test func endpointsHereAndBehindAGatewayAreSpreadByCapacityUnlessTheNetworkIsPreferred() throws {
        let local = """
        workloads:
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.0.0.20"], protocol: HBONE, node: other, network: net-a,
           services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}}

        """
        let yaml = Self.yaml.replacingOccurrences(of: "workloads:\n", with: local)
            .replacingOccurrences(of: "name: ledger-behind-gateway,", with: "name: ledger-behind-gateway, capacity: 3,")
        let here = Destination.Route.hbone(proxy: SocketAddress("10.0.0.20:15008")!, authority: SocketAddress("10.0.0.20:8080")!,
                                           expected: [Self.id("payments/sa/ledger")])
        let spread = try state(yaml)
        let routes = (0..<400).compactMap { spread.resolve(SocketAddress("10.96.0.20:80")!, hashKey: $0)?.route }
        #expect(routes.filter { $0 == here }.count == 100)
        #expect(routes.filter { if case .throughGateway = $0 { true } else { false } }.count == 300)
        let preferClose = try state(yaml.replacingOccurrences(of: "vips: [\"net-a/10.96.0.20\"],", with: """
        vips: ["net-a/10.96.0.20"], loadBalancer: {mode: Failover, routingPreferences: [Network, Region, Zone, Subzone]},
        """))
        for key in 0..<8 { #expect(preferClose.resolve(SocketAddress("10.96.0.20:80")!, hashKey: key, from: IPAddress("10.0.0.10"))?.route == here) }
    }

    /// What cannot be sent through a gateway is refused with the reason, never dialled on a guess:
    /// endpoints elsewhere that name no gateway, a service without the names that would verify its
    /// endpoints (ztunnel's handshake would fail on the empty list), a gateway nobody knows, a
    /// hostname that could smuggle a line into the CONNECT.
    @Test(arguments: [
        ("10.96.0.90:80", "its hostname is not a DNS name, so it cannot be named in a CONNECT"),
        ("10.96.0.40:80", "has endpoints on other networks only, and none names a network gateway"),
        ("10.96.0.50:80", "lists no subjectAltNames, so its endpoints behind network gateway net-b/203.0.113.7:15008 cannot be verified"),
        ("10.96.0.60:80", "network gateway net-b/203.0.113.99:15008 is not a known workload or service"),
    ])
    func whatCannotGoThroughAGatewayIsRefusedWithTheReason(dst: String, reason: String) throws {
        let s = try state()
        let d = try #require(s.resolve(SocketAddress(dst)!))
        guard case let .unreachable(why) = d.route else {
            Issue.record("\(dst) routed \(d.route)")
            return
        }
        #expect(why.hasSuffix(reason), "\(why)")
        guard case let .refuse(_, code) = s.planOutbound(src: SocketAddress("10.0.0.10:4000")!, destination: d, original: SocketAddress(dst)!) else {
            Issue.record("not refused")
            return
        }
        #expect(code == Socks5Parser.hostUnreachable)
    }

    /// A service's waypoint only on another network is reached through that network's gateway, as
    /// in ztunnel: the CONNECTs name the service the client addressed, and the inner tunnel must
    /// reach the waypoint (its service's names). A pod addressed by its IP is never sent across
    /// networks, so one with that waypoint is refused, saying why.
    @Test func aWaypointOnlyOnAnotherNetworkIsReachedThroughItsGatewayForServiceTraffic() throws {
        let s = try state()
        let d = try #require(s.resolve(SocketAddress("10.96.0.80:80")!))
        #expect(d.route == .throughGateway(GatewayRoute(
            gateway: SocketAddress("203.0.113.7:15009")!, gatewayIdentities: [Self.id("istio-system/sa/istio-eastwestgateway")],
            target: "gated.payments.svc.cluster.local:80", identities: [Self.id("payments/sa/waypoint")])))
        #expect(d.service?.name == "gated")
        guard case let .unreachable(why)? = s.resolve(SocketAddress("10.0.0.40:8080")!)?.route else {
            Issue.record("a pod behind a waypoint on another network was not refused")
            return
        }
        #expect(why.hasSuffix("is on other networks only (reached through a gateway only for traffic addressed to a service)"), "\(why)")
    }

    /// A waypoint named by its VIP on another network (as istiod names one by address) is found by
    /// network and address, as in ztunnel, and reached through that network's gateway for
    /// traffic to a service; a pod with that waypoint is refused, saying why. Before, any waypoint
    /// named by an address on another network was refused as missing. An address there that no
    /// service has is still refused, saying so.
    @Test func aWaypointNamedByItsVIPOnAnotherNetworkIsReachedThroughItsGateway() throws {
        let yaml = Self.yaml.replacingOccurrences(of: "services:\n", with: """
        \(Self.standIn("waypoint-b", service: "waypoint-b.payments.svc.cluster.local", gateway: #"{destination: "net-b/203.0.113.7", hboneMtlsPort: 15009}"#, port: 15008))
        - {name: gated-b-0, namespace: payments, serviceAccount: gated, workloadIps: ["10.0.0.41"], protocol: HBONE, network: net-a,
           waypoint: {destination: "net-b/10.96.1.70"}}
        services:
        - {name: waypoint-b, namespace: payments, hostname: waypoint-b.payments.svc.cluster.local, vips: ["net-b/10.96.1.70"], ports: {"15008": 15008},
           subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/waypoint-b"]}
        - {name: gated-b, namespace: payments, hostname: gated-b.payments.svc.cluster.local, vips: ["net-a/10.96.0.81"], ports: {"80": 8080},
           subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/gated"], waypoint: {destination: "net-b/10.96.1.70"}}
        - {name: gated-lost, namespace: payments, hostname: gated-lost.payments.svc.cluster.local, vips: ["net-a/10.96.0.82"], ports: {"80": 8080},
           waypoint: {destination: "net-b/10.96.1.99"}}

        """)
        let s = try state(yaml)
        let d = try #require(s.resolve(SocketAddress("10.96.0.81:80")!))
        #expect(d.route == .throughGateway(GatewayRoute(
            gateway: SocketAddress("203.0.113.7:15009")!, gatewayIdentities: [Self.id("istio-system/sa/istio-eastwestgateway")],
            target: "gated-b.payments.svc.cluster.local:80", identities: [Self.id("payments/sa/waypoint-b")])))
        #expect(d.service?.name == "gated-b")
        guard case let .unreachable(pod)? = s.resolve(SocketAddress("10.0.0.41:8080")!)?.route else {
            Issue.record("a pod behind a waypoint on another network was not refused")
            return
        }
        #expect(pod.hasSuffix("is on other networks only (reached through a gateway only for traffic addressed to a service)"), "\(pod)")
        guard case let .unreachable(lost)? = s.resolve(SocketAddress("10.96.0.82:80")!)?.route else {
            Issue.record("a waypoint at an address no service has was not refused")
            return
        }
        #expect(lost.hasSuffix("is on network \"net-b\", where no service has that VIP"), "\(lost)")
    }

    /// A waypoint with an endpoint here and one behind a gateway: a service's traffic is spread
    /// over both by capacity, a pod addressed by its IP always gets the one here.
    @Test func aPodsWaypointIsPickedOnThisNetworkOnly() throws {
        let yaml = Self.yaml.replacingOccurrences(of: "workloads:\n", with: """
        workloads:
        - {name: waypoint-0, namespace: payments, serviceAccount: waypoint, workloadIps: ["10.0.0.50"], protocol: HBONE, network: net-a,
           services: {"payments/waypoint.payments.svc.cluster.local": {15008: 15008}}}

        """).replacingOccurrences(of: "name: waypoint-behind-gateway,", with: "name: waypoint-behind-gateway, capacity: 3,")
        let s = try state(yaml)
        let here = Destination.Route.hbone(proxy: SocketAddress("10.0.0.50:15008")!, authority: SocketAddress("10.0.0.40:8080")!,
                                           expected: [Self.id("payments/sa/waypoint")])
        for key in 0..<8 { #expect(s.resolve(SocketAddress("10.0.0.40:8080")!, hashKey: key)?.route == here, "hash key \(key)") }
        let routes = (0..<8).compactMap { s.resolve(SocketAddress("10.96.0.80:80")!, hashKey: $0)?.route }
        #expect(routes.filter { if case .throughGateway = $0 { true } else { false } }.count == 6)
        #expect(routes.filter { if case .hbone = $0 { true } else { false } }.count == 2)
    }

    /// A gateway at this proxy's own address and port would loop back into it.
    @Test func aGatewayThatIsTheProxyItselfIsRefused() throws {
        let yaml = Self.yaml.replacingOccurrences(of: "certificates: {directory: /unused}", with: "certificates: {directory: /unused}\n  listen: {inbound: 203.0.113.7:15009}")
        let s = try state(yaml)
        let d = try #require(s.resolve(SocketAddress("10.96.0.20:80")!))
        guard case let .refuse(reason, code) = s.planOutbound(src: SocketAddress("10.0.0.10:4000")!, destination: d, original: SocketAddress("10.96.0.20:80")!) else {
            Issue.record("not refused")
            return
        }
        #expect(reason.contains("is the proxy itself") && code == Socks5Parser.notAllowed, "\(reason)")
    }
}
