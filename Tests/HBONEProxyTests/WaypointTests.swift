import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
@testable import HBONEProxy

/// Traffic to a service or workload with a waypoint goes through the waypoint (ztunnel's rules);
/// a waypoint that cannot be found refuses the connection instead of going around it.
@Suite struct WaypointTests {
    /// `ledger` (VIP 10.96.0.20) has a waypoint named by hostname; `ledger-0` has one named by a
    /// waypoint pod's address; `audit` names one that does not exist.
    static func yaml(serviceWaypoint: String = "{destination: \"payments/waypoint.payments.svc.cluster.local\", hboneMtlsPort: 15009}",
                     workloadWaypoint: String = "{destination: \"/10.1.0.90\"}") -> String {
        """
        workloads:
        - name: ledger-0
          namespace: payments
          serviceAccount: ledger
          workloadIps: ["10.1.0.20"]
          protocol: HBONE
          node: west
          waypoint: \(workloadWaypoint)
          services:
            "payments/ledger.payments.svc.cluster.local": {80: 8080}
        - name: waypoint-0
          namespace: payments
          serviceAccount: waypoint
          workloadIps: ["10.1.0.90"]
          protocol: HBONE
          node: west
          services:
            "payments/waypoint.payments.svc.cluster.local": {15008: 15008}
        - name: audit-0
          namespace: payments
          serviceAccount: audit
          workloadIps: ["10.1.0.30"]
          protocol: HBONE
          node: west
          waypoint: {destination: "payments/gone.payments.svc.cluster.local"}
        - name: checkout-0
          namespace: payments
          serviceAccount: checkout
          workloadIps: ["10.1.0.10"]
          protocol: HBONE
          node: east
        services:
        - name: ledger
          namespace: payments
          hostname: ledger.payments.svc.cluster.local
          vips: ["10.96.0.20"]
          ports: {"80": 8080}
          waypoint: \(serviceWaypoint)
        - name: waypoint
          namespace: payments
          hostname: waypoint.payments.svc.cluster.local
          vips: ["10.96.0.90"]
          ports: {"15008": 15008}
          subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/waypoint-canary"]
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """
    }

    static let waypointID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/waypoint")
    static let canaryID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/waypoint-canary")

    /// The VIP is named to the waypoint untranslated (port 80, not the endpoint's 8080): the
    /// waypoint routes it. The waypoint is reached at its service's endpoint, on the port the
    /// service's GatewayAddress gives, presenting the endpoint's identity or one its service lists.
    @Test func aServiceVIPGoesToItsWaypointNamingTheVIP() throws {
        let s = try testState(Self.yaml())
        let d = try #require(s.resolve(SocketAddress("10.96.0.20:80")!, from: IPAddress("10.1.0.10")!))
        #expect(d.route == .hbone(proxy: SocketAddress("10.1.0.90:15009")!, authority: SocketAddress("10.96.0.20:80")!,
                                  expected: [Self.waypointID, Self.canaryID]))
        #expect(d.workload?.name == "waypoint-0")
        #expect(d.service?.name == "ledger")
        // The same by hostname (SOCKS5): the service's VIP is named.
        #expect(s.resolve(hostname: "ledger.payments.svc.cluster.local", port: 80)?.route == d.route)
    }

    /// A canary between waypoints (ztunnel's weighted waypoints): each connection to the service
    /// picks one by weight, and the primary `waypoint` when every weight is 0. Here 1 in 10 goes
    /// to the waypoint at audit-0's address.
    @Test func weightedWaypointsShareTheServicesConnections() throws {
        func state(_ primary: Int, _ canary: Int) throws -> ProxyState {
            try testState(Self.yaml(serviceWaypoint: """
            {destination: "payments/waypoint.payments.svc.cluster.local"}
              weightedWaypoints:
              - {destination: {destination: "payments/waypoint.payments.svc.cluster.local"}, weight: \(primary)}
              - {destination: {destination: "/10.1.0.30", hboneMtlsPort: 15009}, weight: \(canary)}
            """))
        }
        func counts(_ s: ProxyState) -> [String: Int] {
            var seen: [String: Int] = [:]
            for key in 0..<2000 { if let name = s.resolve(SocketAddress("10.96.0.20:80")!, hashKey: key)?.workload?.name { seen[name, default: 0] += 1 } }
            return seen
        }
        let split = counts(try state(90, 10))
        #expect((150...250).contains(split["audit-0"] ?? 0) && (split["audit-0"] ?? 0) + (split["waypoint-0"] ?? 0) == 2000, "\(split)")
        let canary = try state(0, 1).resolve(SocketAddress("10.96.0.20:80")!)
        #expect(canary?.route == .hbone(proxy: SocketAddress("10.1.0.30:15009")!, authority: SocketAddress("10.96.0.20:80")!,
                                        expected: [try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/audit")]))
        #expect(counts(try state(0, 0)) == ["waypoint-0": 2000])
    }

    /// A pod addressed directly goes to its own waypoint, here named by the waypoint pod's address
    /// (dialled at that address, on the default HBONE port 15008).
    @Test func aWorkloadAddressGoesToItsWaypointNamingTheWorkload() throws {
        let s = try testState(Self.yaml())
        let d = try #require(s.resolve(SocketAddress("10.1.0.20:8080")!, from: IPAddress("10.1.0.10")!))
        #expect(d.route == .hbone(proxy: SocketAddress("10.1.0.90:15008")!, authority: SocketAddress("10.1.0.20:8080")!, expected: [Self.waypointID]))
        #expect(d.workload?.name == "waypoint-0")
        // A waypoint named by its service's VIP: an endpoint of that service, with its SANs.
        let byVIP = try testState(Self.yaml(workloadWaypoint: "{destination: \"/10.96.0.90\"}"))
        #expect(byVIP.resolve(SocketAddress("10.1.0.20:8080")!)?.route
                == .hbone(proxy: SocketAddress("10.1.0.90:15008")!, authority: SocketAddress("10.1.0.20:8080")!, expected: [Self.waypointID, Self.canaryID]))
    }

    /// The waypoint itself, sending on to the workload it fronts, goes straight to the workload's
    /// node; anyone else (or an unknown source) goes through the waypoint.
    @Test func theWaypointItselfGoesStraightToTheWorkload() throws {
        for waypoint in ["{destination: \"/10.1.0.90\"}", "{destination: \"/10.96.0.90\"}",
                         "{destination: \"payments/waypoint.payments.svc.cluster.local\"}"] {
            let s = try testState(Self.yaml(workloadWaypoint: waypoint))
            let direct = Destination.Route.hbone(proxy: SocketAddress("10.1.0.20:15008")!, authority: SocketAddress("10.1.0.20:8080")!,
                                                 expected: [try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")])
            #expect(s.resolve(SocketAddress("10.1.0.20:8080")!, from: IPAddress("10.1.0.90")!)?.route == direct, "\(waypoint)")
            #expect(s.resolve(SocketAddress("10.1.0.20:8080")!, from: IPAddress("10.1.0.10")!)?.route != direct, "\(waypoint)")
            #expect(s.resolve(SocketAddress("10.1.0.20:8080")!)?.route != direct, "\(waypoint)")
        }
    }

    /// A waypoint that names nothing known, or a service with no endpoint, refuses the connection:
    /// the destination is never reached around it.
    @Test func aWaypointThatCannotBeFoundRefuses() throws {
        let s = try testState(Self.yaml())
        guard case let .unreachable(reason)? = s.resolve(SocketAddress("10.1.0.30:8080")!)?.route else {
            Issue.record("routed around a missing waypoint")
            return
        }
        #expect(reason.contains("waypoint payments/gone.payments.svc.cluster.local:15008 of workload 10.1.0.30 not found"), "\(reason)")
        for missing in ["{destination: \"/10.9.9.9\"}", "{destination: \"other/waypoint.payments.svc.cluster.local\"}"] {
            let t = try testState(Self.yaml(serviceWaypoint: missing))
            guard case .unreachable? = t.resolve(SocketAddress("10.96.0.20:80")!)?.route else {
                Issue.record("\(missing): routed around a missing waypoint")
                continue
            }
        }
        // The plan refuses it as unreachable, before anything is opened.
        #expect(s.planOutbound(src: SocketAddress("10.1.0.10:40000")!, destination: s.resolve(SocketAddress("10.1.0.30:8080")!),
                               original: SocketAddress("10.1.0.30:8080")!)
                == .refuse(reason: "waypoint payments/gone.payments.svc.cluster.local:15008 of workload 10.1.0.30 not found",
                           socksCode: Socks5Parser.hostUnreachable))
    }

    /// ztunnel's config files write a GatewayAddress as `network/ip` or `namespace/hostname`.
    @Test(arguments: [
        ("/10.1.0.90", GatewayAddress.Destination.address(network: "", ip: IPAddress("10.1.0.90")!)),
        ("net-a/fd00::5", .address(network: "net-a", ip: IPAddress("fd00::5")!)),
        ("/::ffff:10.1.0.90", .address(network: "", ip: IPAddress("10.1.0.90")!)),
        ("payments/waypoint.payments.svc.cluster.local", .hostname(namespace: "payments", hostname: "waypoint.payments.svc.cluster.local")),
    ])
    func gatewayDestinationsParse(text: String, expected: GatewayAddress.Destination) {
        let g = GatewayAddress(destinationText: text, hboneMtlsPort: 15008)
        #expect(g?.destination == expected, "\(text)")
        #expect(g.flatMap { GatewayAddress(destinationText: $0.destinationText, hboneMtlsPort: 15008) } == g, "\(text) round-trips")
    }

    @Test(arguments: ["10.1.0.90", "", "/", "payments/", "/waypoint", "a/b/c"])
    func badGatewayDestinationsAreRefused(text: String) {
        #expect(GatewayAddress(destinationText: text, hboneMtlsPort: 15008) == nil, "\(text)")
    }

    @Test func aBadWaypointInTheFileNamesTheLine() throws {
        let yaml = Self.yaml(workloadWaypoint: "{destination: \"nowhere\"}")
        #expect {
            try ProxyConfig.parse(yaml: yaml, file: "mesh.yaml", environment: [:])
        } throws: { error in
            "\(error)".contains("mesh.yaml:8") && "\(error)".contains("neither network/ip nor namespace/hostname")
        }
    }
}
