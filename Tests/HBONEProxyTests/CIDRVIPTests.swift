import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
@testable import HBONEProxy

/// A ServiceEntry's CIDR VIP (ztunnel's `cidr_vips`): every address in the block is the service,
/// after workload addresses and exact VIPs; of several blocks, the client's namespace's first,
/// then the longest prefix, then the canonical one. Read as a single host (the old behaviour), the
/// rest of the block went straight to its destination, past the service's waypoint.
@Suite struct CIDRVIPTests {
    static let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, workloadIps: ["10.1.0.10"], protocol: HBONE, node: east}
        - {name: shop-0, namespace: shop, workloadIps: ["10.1.0.11"], protocol: HBONE, node: east}
        - {name: waypoint-0, namespace: shop, serviceAccount: waypoint, workloadIps: ["10.1.0.90"], protocol: HBONE, node: west,
           services: {"shop/waypoint.shop.svc.cluster.local": {15008: 15008}}}
        - {name: db-0, namespace: shop, workloadIps: ["10.9.3.5"], protocol: HBONE, node: west}
        services:
        - {name: waypoint, namespace: shop, hostname: waypoint.shop.svc.cluster.local, vips: ["10.96.0.90"], ports: {"15008": 15008}}
        - {name: partners, namespace: shop, hostname: partners.example.com, cidrVips: ["10.9.0.0/16", "fd00:9::/32"], ports: {"443": 443},
           waypoint: {destination: "shop/waypoint.shop.svc.cluster.local"}}
        - {name: lab, namespace: other, hostname: lab.example.com, cidrVips: ["10.9.3.0/24"], ports: {"443": 443}}
        - {name: hidden, namespace: other, hostname: hidden.example.com, cidrVips: ["10.9.4.0/24"], ports: {"443": 443}, visibility: Namespace}
        - {name: exact, namespace: other, hostname: exact.example.com, vips: ["10.9.3.4"], ports: {"443": 443}}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """

    /// The service an address names for a client (the routing to it is `ProxyState.resolve`'s).
    func service(_ s: ProxyState, _ dst: String, from client: String) -> String? {
        s.service(atVIP: SocketAddress(dst)!.ip, from: IPAddress(client)!)?.name
    }

    @Test func everyAddressInTheBlockIsTheServiceAndGoesThroughItsWaypoint() throws {
        let s = try testState(Self.yaml)
        let d = try #require(s.resolve(SocketAddress("10.9.200.7:443")!, from: IPAddress("10.1.0.10")!))
        #expect(d.service?.name == "partners" && d.workload?.name == "waypoint-0", "\(d)")
        guard case let .hbone(proxy, authority, _) = d.route else { Issue.record("\(d.route)"); return }
        #expect(proxy == SocketAddress("10.1.0.90:15008") && authority == SocketAddress("10.9.200.7:443"))
        #expect(service(s, "[fd00:9::1]:443", from: "10.1.0.10") == "partners")
        // Outside every block: an address the mesh does not know.
        #expect(s.resolve(SocketAddress("10.10.0.1:443")!, from: IPAddress("10.1.0.10")!)?.route == .direct(SocketAddress("10.10.0.1:443")!))
    }

    @Test func theClientsNamespaceThenTheLongestPrefixExactVIPsAndWorkloadsFirst() throws {
        let s = try testState(Self.yaml)
        #expect(service(s, "10.9.3.200:443", from: "10.1.0.10") == "lab")        // /24 beats /16
        #expect(service(s, "10.9.3.200:443", from: "10.1.0.11") == "partners")   // shop's own /16 beats other's /24
        #expect(service(s, "10.9.3.4:443", from: "10.1.0.10") == "exact")        // an exact VIP beats every block
        #expect(s.resolve(SocketAddress("10.9.3.5:5432")!, from: IPAddress("10.1.0.10")!)?.workload?.name == "db-0")  // a workload too
        #expect(service(s, "10.9.4.1:443", from: "10.1.0.10") == "partners")     // hidden is not visible to payments
        let both = try testState(Self.yaml.replacingOccurrences(of: "visibility: Namespace", with: "canonical: true"))
        #expect(service(both, "10.9.4.1:443", from: "10.1.0.10") == "hidden")
    }

    @Test func theFileSaysWhatIsWrongAndTheDumpShowsThem() throws {
        for (bad, _) in [("10.9.0.0/33", 0), ("10.9.0.0", 0), ("a/b/c/d", 0)] {
            do {
                _ = try ProxyConfig.parse(yaml: Self.yaml.replacingOccurrences(of: "\"10.9.3.0/24\"", with: "\"\(bad)\""), file: "t.yaml", environment: [:])
                Issue.record("\(bad) accepted")
            } catch { #expect("\(error)".contains("t.yaml:") && "\(error)".contains("cidrVips") && "\(error)".contains("[network/]ip/length"), "\(error)") }
        }
        let s = try testState(Self.yaml)
        let dump = ConfigDump(state: s).jsonObject()
        let partners = (dump["services"] as? [[String: Any]])?.first { $0["name"] as? String == "partners" }
        #expect(partners?["cidrVips"] as? [String] == ["/10.9.0.0/16", "/fd00:9::/32"], "\(String(describing: partners))")
    }
}
