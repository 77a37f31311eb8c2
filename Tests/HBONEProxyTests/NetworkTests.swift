import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONETLS
@testable import HBONEProxy

/// Several networks in one mesh (one per cluster, joined by east-west gateways): addresses are
/// looked up on this proxy's network only, as another network may reuse its IPs, and what is only
/// on another network is refused with the reason rather than dialled here.
@Suite struct NetworkTests {
    /// This proxy (node `west`, the default network) holds `ledger-0`; `ledger` has an endpoint and
    /// the same VIP on each network (two clusters gave it one IP); `audit` only on `net-b`; `report` has a VIP on `net-b` only.
    static let yaml = """
    workloads:
    - name: ledger-0
      namespace: payments
      serviceAccount: ledger
      workloadIps: ["10.1.0.20"]
      protocol: HBONE
      node: west
      services:
        "payments/ledger.payments.svc.cluster.local": {80: 8080}
    - name: ledger-b
      namespace: payments
      serviceAccount: ledger
      workloadIps: ["10.9.0.20"]
      protocol: HBONE
      node: b-node
      network: net-b
      services:
        "payments/ledger.payments.svc.cluster.local": {80: 8080}
    - name: audit-b
      namespace: payments
      serviceAccount: audit
      workloadIps: ["10.9.0.30"]
      protocol: HBONE
      node: b-node
      network: net-b
      services:
        "payments/audit.payments.svc.cluster.local": {80: 8080}
    - name: waypoint-0
      namespace: payments
      serviceAccount: waypoint
      workloadIps: ["10.1.0.90"]
      protocol: HBONE
      node: west
    - name: gated-0
      namespace: payments
      serviceAccount: gated
      workloadIps: ["10.1.0.40"]
      protocol: HBONE
      node: west
      waypoint: {destination: "net-b/10.1.0.90"}
    services:
    - name: ledger
      namespace: payments
      hostname: ledger.payments.svc.cluster.local
      vips: ["net-b/10.96.0.20", "/10.96.0.20"]
      ports: {"80": 8080}
    - name: audit
      namespace: payments
      hostname: audit.payments.svc.cluster.local
      vips: ["10.96.0.30"]
      ports: {"80": 8080}
    - name: report
      namespace: payments
      hostname: report.payments.svc.cluster.local
      vips: ["net-b/10.96.0.40"]
      ports: {"80": 8080}
    - name: fronted
      namespace: payments
      hostname: fronted.payments.svc.cluster.local
      vips: ["net-b/10.96.0.60", "/10.96.0.61"]
      ports: {"80": 8080}
      waypoint: {destination: "/10.1.0.90"}
    hbone:
      node: west
      rootCertificates: /unused
      certificates: {directory: /unused}
    """

    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

    /// Another network's pod at a local pod's address (as istiod sends from a remote cluster whose
    /// pod CIDR overlaps ours, even on a node of the same name): with addresses keyed by IP alone,
    /// the one that came last took the local pod's place, so inbound traffic to the local pod was
    /// judged as that pod (its namespace, labels and policies) and outbound traffic to it expected
    /// the other pod's identity. Whatever the order, the local pod keeps its address.
    @Test(arguments: [true, false])
    func anotherNetworksPodDoesNotTakeALocalPodsAddress(otherFirst: Bool) throws {
        var config = try ProxyConfig.parse(yaml: Self.yaml, file: "test.yaml", environment: [:])
        let impostor = Workload(uid: "net-b/impostor", name: "impostor-0", namespace: "other", serviceAccount: "impostor", trustDomain: "cluster.local",
                                workloadIps: [IPAddress("10.1.0.20")!], protocol: InboundProtocol.tcp, node: "west", clusterId: "cluster-b", workloadName: "impostor",
                                canonicalName: "impostor", canonicalRevision: "latest", labels: [:], services: [:],
                                identity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/other/sa/impostor"), network: "net-b")
        if otherFirst { config.workloads.insert(impostor, at: 0) } else { config.workloads.append(impostor) }
        let s = try ProxyState(config: config, trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")), certificates: [:], version: 1)
        #expect(s.localWorkloadsByIP[IPAddress("10.1.0.20")!]?.name == "ledger-0")
        #expect(s.workloadsByIP[IPAddress("10.1.0.20")!]?.name == "ledger-0")
        #expect(!config.localWorkloads.contains { $0.name == "impostor-0" })
        let d = try #require(s.resolve(SocketAddress("10.1.0.20:8080")!))
        #expect(d.route == .hbone(proxy: SocketAddress("10.1.0.20:15008")!, authority: SocketAddress("10.1.0.20:8080")!, expected: [Self.ledger]))
        #expect(config.otherNetworkNote?.contains("1 workload(s) on node west (other/impostor-0 first) are on network \"net-b\"") == true)
    }

    /// `ledger`'s endpoint on `net-b` is never picked here: its address means another pod on this
    /// network, or none. Its VIP is this network's too, whichever network lists it last.
    @Test func aServiceUsesItsEndpointsOnThisNetwork() throws {
        let s = try testState(Self.yaml)
        for key in [0, 1, 2, 3, -1, Int.min] {
            let d = try #require(s.resolve(SocketAddress("10.96.0.20:80")!, hashKey: key))
            #expect(d.workload?.name == "ledger-0")
            #expect(d.route == .hbone(proxy: SocketAddress("10.1.0.20:15008")!, authority: SocketAddress("10.1.0.20:8080")!, expected: [Self.ledger]))
        }
        #expect(s.endpointSets["payments/ledger.payments.svc.cluster.local"]?.endpoints.map(\.name) == ["ledger-0"])
    }

    /// A service reached only on another network is refused, saying why, rather than dialled at
    /// an address that is not its pod's here (by VIP and by hostname alike).
    @Test func aServiceOnlyOnAnotherNetworkIsRefusedWithTheReason() throws {
        let s = try testState(Self.yaml)
        for d in [s.resolve(SocketAddress("10.96.0.30:80")!), s.resolve(hostname: "audit.payments.svc.cluster.local", port: 80)] {
            let d = try #require(d)
            guard case let .unreachable(reason) = d.route else {
                Issue.record("expected a refusal, got \(d.route)")
                continue
            }
            #expect(reason.contains("service payments/audit.payments.svc.cluster.local has endpoints on other networks only"))
            #expect(d.service?.name == "audit")
        }
        let plan = s.planOutbound(src: SocketAddress("10.1.0.20:40000")!, destination: s.resolve(SocketAddress("10.96.0.30:80")!),
                                  original: SocketAddress("10.96.0.30:80")!)
        guard case let .refuse(_, code) = plan else {
            Issue.record("expected a refusal, got \(plan)")
            return
        }
        #expect(code == Socks5Parser.hostUnreachable)
    }

    /// A VIP on another network is not a service address here: it is passed through like any
    /// address the mesh does not know on this network.
    @Test func aVIPOnAnotherNetworkIsNotAServiceHere() throws {
        let s = try testState(Self.yaml)
        #expect(s.servicesByVIP[IPAddress("10.96.0.40")!] == nil)
        #expect(s.resolve(SocketAddress("10.96.0.40:80")!)?.route == .direct(SocketAddress("10.96.0.40:80")!))
    }

    /// A waypoint named by an address on another network is not the pod at that address here:
    /// the connection is refused, naming the network, instead of going to `waypoint-0`.
    @Test func aWaypointOnAnotherNetworkIsNotTheLocalPodAtItsAddress() throws {
        let s = try testState(Self.yaml)
        let d = try #require(s.resolve(SocketAddress("10.1.0.40:8080")!, from: IPAddress("10.1.0.20")!))
        guard case let .unreachable(reason) = d.route else {
            Issue.record("expected a refusal, got \(d.route)")
            return
        }
        #expect(reason.contains("is on network \"net-b\""))
        // Nor is waypoint-0 taken for that waypoint when it sends on to gated-0.
        #expect(!s.isWaypoint(GatewayAddress(destination: .address(network: "net-b", ip: IPAddress("10.1.0.90")!), hboneMtlsPort: 15008),
                              source: IPAddress("10.1.0.90")!))
    }

    /// Over SOCKS5, a service's name stands for its VIP on this network, and that is the address
    /// named to its waypoint: the other network's VIP means nothing (or another service) here.
    @Test func aNameStandsForItsVIPOnThisNetwork() throws {
        let s = try testState(Self.yaml)
        let d = try #require(s.resolve(hostname: "fronted.payments.svc.cluster.local", port: 80))
        guard case let .hbone(proxy, authority, _) = d.route else {
            Issue.record("expected the waypoint, got \(d.route)")
            return
        }
        #expect(proxy == SocketAddress("10.1.0.90:15008")! && authority == SocketAddress("10.96.0.61:80")!)
    }

    /// On `net-b` (`hbone.network`) the same mesh reads the other way round.
    @Test func theProxysNetworkDecides() throws {
        let yaml = Self.yaml.replacingOccurrences(of: "  node: west\n  rootCertificates", with: "  node: b-node\n  network: net-b\n  rootCertificates")
        let s = try testState(yaml)
        #expect(s.settings.network == "net-b")
        #expect(s.endpointSets["payments/ledger.payments.svc.cluster.local"]?.endpoints.map(\.name) == ["ledger-b"])
        #expect(s.localWorkloadsByIP.keys.sorted { $0.description < $1.description } == [IPAddress("10.9.0.20")!, IPAddress("10.9.0.30")!])
        #expect(s.servicesByVIP[IPAddress("10.96.0.40")!]?.name == "report")
        #expect(s.resolve(SocketAddress("10.96.0.20:80")!)?.workload?.name == "ledger-b")
        // audit's VIP is on the default network; by name it reaches its endpoint on net-b.
        #expect(s.resolve(SocketAddress("10.96.0.30:80")!)?.route == .direct(SocketAddress("10.96.0.30:80")!))
        #expect(s.resolve(hostname: "audit.payments.svc.cluster.local", port: 80)?.workload?.name == "audit-b")
    }
}
