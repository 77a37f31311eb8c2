import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
@testable import HBONEProxy

/// How a service VIP picks its endpoint, as ztunnel does: healthy endpoints only (unless the
/// service allows all), weighted by capacity, ranked by the service's routing preferences
/// against the connecting workload's node, cluster and locality.
@Suite struct LoadBalancingTests {
    /// This proxy is node `east`. `checkout-0` runs in zone z1, `checkout-1` in z2 (region r1).
    /// `ledger` has an endpoint in each of z1, z2 (r1) and z3 (r2), and one unhealthy in z1.
    static func yaml(loadBalancer: String = "", ledgerC: String = "") -> String {
        """
        workloads:
        - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east,
           clusterId: c1, locality: {region: r1, zone: z1}}
        - {name: checkout-1, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.11"], protocol: HBONE, node: east,
           clusterId: c1, locality: {region: r1, zone: z2}}
        \(endpoint("ledger-a", ip: "10.1.0.1", node: "n1", zone: "z1"))
        \(endpoint("ledger-b", ip: "10.1.0.2", node: "n2", zone: "z2"))
        \(endpoint("ledger-c", ip: "10.1.0.3", node: "n3", region: "r2", zone: "z3", extra: ledgerC))
        \(endpoint("ledger-bad", ip: "10.1.0.4", node: "n1", zone: "z1", extra: "status: Unhealthy"))
        services:
        - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["10.96.0.20"], ports: {"80": 8080}\(loadBalancer)}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """
    }

    static func endpoint(_ name: String, ip: String, node: String, region: String = "r1", zone: String, extra: String = "") -> String {
        """
        - {name: \(name), namespace: payments, serviceAccount: ledger, workloadIps: ["\(ip)"], protocol: HBONE, node: \(node), clusterId: c1,
           locality: {region: \(region), zone: \(zone)}, services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}\(extra.isEmpty ? "" : ", " + extra)}
        """
    }

    static let vip = SocketAddress("10.96.0.20:80")!

    /// How many of `keys` connections from `source` each endpoint got.
    static func picks(_ s: ProxyState, from source: String? = nil, keys: Range<Int> = 0..<300) -> [String: Int] {
        var counts: [String: Int] = [:]
        for key in keys {
            if let name = s.resolve(vip, hashKey: key, from: source.flatMap(IPAddress.init))?.workload?.name { counts[name, default: 0] += 1 }
        }
        return counts
    }

    /// istiod marks a pod that is not ready, or terminating, unhealthy. hbone used to pick it like
    /// any endpoint, so during every rollout a share of new connections went to pods that were
    /// shutting down or not serving yet. It gets none now; its own address still reaches it.
    @Test func anUnhealthyEndpointGetsNoNewConnections() throws {
        let s = try testState(Self.yaml())
        #expect(Self.picks(s) == ["ledger-a": 100, "ledger-b": 100, "ledger-c": 100])
        #expect(s.resolve(SocketAddress("10.1.0.4:8080")!)?.workload?.name == "ledger-bad")
    }

    /// A service that publishes not-ready addresses (health policy AllowAll) picks them too.
    @Test func aServiceThatAllowsAllPicksUnhealthyEndpointsToo() throws {
        let s = try testState(Self.yaml(loadBalancer: ", loadBalancer: {healthPolicy: AllowAll}"))
        #expect(Self.picks(s, keys: 0..<400) == ["ledger-a": 100, "ledger-b": 100, "ledger-c": 100, "ledger-bad": 100])
    }

    @Test func aServiceWithOnlyUnhealthyEndpointsIsRefusedSayingSo() throws {
        var yaml = Self.yaml()
        for name in ["ledger-a", "ledger-b", "ledger-c"] {
            yaml = yaml.replacingOccurrences(of: "name: \(name),", with: "name: \(name), status: Unhealthy,")
        }
        let d = try #require(try testState(yaml).resolve(Self.vip))
        #expect(d.route == .unreachable("service payments/ledger.payments.svc.cluster.local has no healthy endpoint (4 unhealthy)"))
        #expect(d.service?.name == "ledger")
    }

    /// Consecutive source ports take the endpoints in turn, each as often as its capacity says;
    /// capacity 0 is never picked, and a service whose endpoints all have 0 is refused.
    @Test func capacityWeighsThePick() throws {
        var yaml = Self.yaml().replacingOccurrences(of: "name: ledger-b,", with: "name: ledger-b, capacity: 3,")
        let weighted = try testState(yaml.replacingOccurrences(of: "name: ledger-c,", with: "name: ledger-c, capacity: 0,"))
        #expect(Self.picks(weighted, keys: 0..<400) == ["ledger-a": 100, "ledger-b": 300])
        // Weights past the range of source ports are still shared out by their ratio.
        yaml = Self.yaml().replacingOccurrences(of: "name: ledger-a,", with: "name: ledger-a, capacity: 20000,")
            .replacingOccurrences(of: "name: ledger-b,", with: "name: ledger-b, capacity: 60000,")
            .replacingOccurrences(of: "name: ledger-c,", with: "name: ledger-c, capacity: 0,")
        let large = Self.picks(try testState(yaml), keys: 30_000..<50_000)
        #expect((4_500...5_500).contains(large["ledger-a"] ?? 0), "\(large)")
        #expect((large["ledger-a"] ?? 0) + (large["ledger-b"] ?? 0) == 20_000)
        for name in ["ledger-a", "ledger-b", "ledger-c"] {
            yaml = yaml.replacingOccurrences(of: "name: \(name), capacity: \(["ledger-a": 20000, "ledger-b": 60000, "ledger-c": 0][name]!),",
                                             with: "name: \(name), capacity: 0,")
        }
        #expect(try testState(yaml).resolve(Self.vip)?.route == .unreachable("service payments/ledger.payments.svc.cluster.local has no endpoint with a capacity above 0"))
        #expect(weighted.resolve(Self.vip, hashKey: Int.min)?.workload != nil)
    }

    /// PreferClose (Failover, in order): the endpoints that share the longest run of preferences
    /// with the connecting workload. A client hbone cannot place (say, SOCKS5 from the node)
    /// has no locality, so every endpoint ranks alike and all are used.
    @Test func failoverPrefersTheClosestEndpoints() throws {
        let s = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Failover, routingPreferences: [Region, Zone]}"))
        #expect(Self.picks(s, from: "10.0.0.10") == ["ledger-a": 300])
        #expect(Self.picks(s, from: "10.0.0.11") == ["ledger-b": 300])
        #expect(Self.picks(s) == ["ledger-a": 100, "ledger-b": 100, "ledger-c": 100])
        // Without the zone's endpoint, the region's others; without the region's, anyone.
        let noZ1 = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Failover, routingPreferences: [Region, Zone]}")
            .replacingOccurrences(of: "name: ledger-a,", with: "name: ledger-a, status: Unhealthy,"))
        #expect(Self.picks(noZ1, from: "10.0.0.10") == ["ledger-b": 300])
        let elsewhere = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Failover, routingPreferences: [Region, Zone]}")
            .replacingOccurrences(of: "region: r1, zone: z1}, services", with: "region: r9, zone: z1}, services")
            .replacingOccurrences(of: "region: r1, zone: z2}, services", with: "region: r9, zone: z2}, services"))
        #expect(Self.picks(elsewhere, from: "10.0.0.10") == ["ledger-a": 100, "ledger-b": 100, "ledger-c": 100])
    }

    /// Strict: only endpoints that meet every preference; none is a refusal that says which.
    @Test func strictKeepsToEndpointsThatMeetEveryPreference() throws {
        let zone = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Strict, routingPreferences: [Cluster, Zone]}"))
        #expect(Self.picks(zone, from: "10.0.0.11") == ["ledger-b": 300])
        let node = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Strict, routingPreferences: [Node]}"))
        #expect(node.resolve(Self.vip, from: IPAddress("10.0.0.10"))?.route
            == .unreachable("service payments/ledger.payments.svc.cluster.local has no endpoint that meets all its routing preferences (Strict: Node)"))
        let here = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Strict, routingPreferences: [Node]}", ledgerC: "capacity: 1")
            .replacingOccurrences(of: "node: n3,", with: "node: east,"))
        #expect(Self.picks(here, from: "10.0.0.10") == ["ledger-c": 300])
        // The proxy's own node ranks a client it cannot place.
        #expect(Self.picks(here) == ["ledger-c": 300])
    }

    /// Kubernetes `internalTrafficPolicy: Local` is Strict on the node. With endpoints on many
    /// nodes (a DaemonSet) the client's node's group is found by its place instead of ranking
    /// every node's; the picks are the same as ranking them: the client's node only, and under
    /// Failover everyone when that node has none.
    @Test func aServiceKeptToTheClientsNodeWithEndpointsOnManyNodes() throws {
        func yaml(_ mode: String) -> String {
            var text = "workloads:\n- {name: client, namespace: payments, workloadIps: [\"10.0.0.10\"], protocol: HBONE, node: node-7}\n"
            text += "- {name: stray, namespace: payments, workloadIps: [\"10.0.0.11\"], protocol: HBONE, node: node-99}\n"
            for n in 0..<30 {
                for e in 0..<2 {
                    text += "- {name: agent-\(n)-\(e), namespace: payments, workloadIps: [\"10.2.\(n).\(e + 1)\"], protocol: HBONE, node: node-\(n), "
                        + "services: {\"payments/agent.payments.svc.cluster.local\": {80: 8080}}}\n"
                }
            }
            return text + """
            services:
            - {name: agent, namespace: payments, hostname: agent.payments.svc.cluster.local, vips: ["10.96.0.30"], ports: {"80": 8080},
               loadBalancer: {mode: \(mode), routingPreferences: [Node]}}
            hbone:
              node: node-7
              rootCertificates: /unused
              certificates: {directory: /unused}
            """
        }
        let vip = SocketAddress("10.96.0.30:80")!
        let strict = try testState(yaml("Strict"))
        #expect(try #require(strict.endpointSets["payments/agent.payments.svc.cluster.local"]).groupByPlace.count == 30)
        var seen: [String: Int] = [:]
        for key in 0..<100 { if let name = strict.resolve(vip, hashKey: key, from: IPAddress("10.0.0.10"))?.workload?.name { seen[name, default: 0] += 1 } }
        #expect(seen == ["agent-7-0": 50, "agent-7-1": 50])
        guard case .unreachable? = strict.resolve(vip, from: IPAddress("10.0.0.11"))?.route else {
            Issue.record("a client on a node without an endpoint was not refused")
            return
        }
        let failover = try testState(yaml("Failover"))
        #expect(failover.resolve(vip, hashKey: 3, from: IPAddress("10.0.0.10"))?.workload?.name == "agent-7-1")
        let anywhere = Set((0..<60).compactMap { failover.resolve(vip, hashKey: $0, from: IPAddress("10.0.0.11"))?.workload?.name })
        #expect(anywhere.count == 60)
    }

    /// Passthrough: no endpoint is picked; the connection goes to the address the client dialled
    /// (by VIP, or by hostname through SOCKS5: its VIP).
    @Test func passthroughGoesToTheAddressDialled() throws {
        let s = try testState(Self.yaml(loadBalancer: ", loadBalancer: {mode: Passthrough}"))
        let d = try #require(s.resolve(Self.vip))
        #expect(d.route == .direct(Self.vip))
        #expect(d.service?.name == "ledger")
        #expect(s.resolve(hostname: "ledger.payments.svc.cluster.local", port: 80)?.route == .direct(Self.vip))
    }
}
