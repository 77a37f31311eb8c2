import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONETLS
@testable import HBONEProxy

@Suite struct DestinationTests {
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
    - name: legacy-0
      namespace: payments
      serviceAccount: legacy
      workloadIps: ["10.1.0.30"]
      protocol: TCP
      node: west
      services:
        "payments/legacy.payments.svc.cluster.local": {5432: 0}
    services:
    - name: ledger
      namespace: payments
      hostname: ledger.payments.svc.cluster.local
      vips: ["/10.96.0.20"]
      ports: {"80": 8080}
      subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/ledger-canary"]
    - name: legacy
      namespace: payments
      hostname: legacy.payments.svc.cluster.local
      vips: ["10.96.0.30"]
      ports: {"5432": 0}
    hbone:
      node: east
      rootCertificates: /unused
      certificates: {directory: /unused}
    """

    func state() throws -> ProxyState { try testState(Self.yaml) }

    @Test func workloadIPGoesThroughHBONEToItsNode() throws {
        let d = try state().resolve(SocketAddress("10.1.0.20:8080")!)
        #expect(d?.route == .hbone(proxy: SocketAddress("10.1.0.20:15008")!, authority: SocketAddress("10.1.0.20:8080")!,
                                   expected: [try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")]))
    }

    @Test func serviceVIPPicksAnEndpointAndTranslatesThePort() throws {
        let d = try state().resolve(SocketAddress("10.96.0.20:80")!)
        guard case let .hbone(proxy, authority, expected) = d?.route else {
            Issue.record("not HBONE: \(String(describing: d))")
            return
        }
        #expect(proxy == SocketAddress("10.1.0.20:15008"))
        #expect(authority == SocketAddress("10.1.0.20:8080"))
        // The endpoint's own identity and the service's listed SANs are both acceptable.
        #expect(expected.map(\.description).sorted() == ["spiffe://cluster.local/ns/payments/sa/ledger", "spiffe://cluster.local/ns/payments/sa/ledger-canary"])
        #expect(d?.service?.hostname == "ledger.payments.svc.cluster.local")
    }

    @Test func hostnameResolvesLikeTheVIP() throws {
        let d = try state().resolve(hostname: "ledger.payments.svc.cluster.local", port: 80)
        guard case let .hbone(_, authority, _) = d?.route else {
            Issue.record("not HBONE")
            return
        }
        #expect(authority == SocketAddress("10.1.0.20:8080"))
        #expect(try state().resolve(hostname: "nope.svc", port: 80) == nil)
    }

    @Test func tcpWorkloadsAndUnknownAddressesGoDirect() throws {
        let s = try state()
        #expect(s.resolve(SocketAddress("10.96.0.30:5432")!)?.route == .direct(SocketAddress("10.1.0.30:5432")!))   // port 0 = same port
        #expect(s.resolve(SocketAddress("192.0.2.7:443")!)?.route == .direct(SocketAddress("192.0.2.7:443")!))
        #expect(s.resolve(SocketAddress("192.0.2.7:443")!)?.workload == nil)
    }

    @Test func ownPortsAreKnown() throws {
        #expect(try state().ownPorts.isSuperset(of: [15008, 15000, 15020, 15021]))
    }

    /// Every spelling of a mesh address routes like the address itself (no plaintext bypass).
    @Test(arguments: ["10.1.0.20:8080", "[::ffff:10.1.0.20]:8080", "[::FFFF:A01:14]:8080", "[0:0:0:0:0:ffff:a01:14]:8080", "[::10.1.0.20]:8080"])
    func everySpellingOfAWorkloadGoesThroughHBONE(text: String) throws {
        let d = try state().resolve(try #require(SocketAddress(text)))
        guard case let .hbone(_, authority, _) = d?.route else {
            Issue.record("\(text) routed \(String(describing: d?.route))")
            return
        }
        #expect(authority == SocketAddress("10.1.0.20:8080"))
    }

    /// The self-call guard: the proxy's ports on any address that reaches this host.
    @Test(arguments: [
        ("127.0.0.1:15000", true), ("[::ffff:127.0.0.1]:15000", true), ("0.0.0.0:15000", true), ("[::]:15000", true),
        ("[::1]:15020", true), ("[::ffff:0.0.0.0]:15021", true), ("127.0.0.9:15008", true), ("10.1.0.20:15008", false),
        ("127.0.0.1:8080", false), ("192.0.2.1:15000", false),
    ])
    func proxyItself(text: String, isSelf: Bool) throws {
        #expect(try state().isProxyItself(try #require(SocketAddress(text))) == isSelf, "\(text)")
    }

    /// A service's endpoints are the workloads that list it, in config order, whatever else the
    /// mesh holds; the hash key picks among them (any key, even Int.min, whose abs() would trap).
    @Test func serviceEndpointsAreTheListingWorkloadsInConfigOrder() throws {
        var yaml = "workloads:\n"
        for i in 0..<40 {
            let service = i % 4 == 1 ? "payments/ledger.payments.svc.cluster.local" : "payments/other.payments.svc.cluster.local"
            yaml += """
            - name: w-\(i)
              namespace: payments
              serviceAccount: sa\(i)
              workloadIps: ["10.1.1.\(i)"]
              protocol: HBONE
              node: west
              services:
                "\(service)": {80: 8080}

            """
        }
        yaml += """
        services:
        - name: ledger
          namespace: payments
          hostname: ledger.payments.svc.cluster.local
          vips: ["10.96.0.20"]
          ports: {"80": 8080}
        - name: other
          namespace: payments
          hostname: other.payments.svc.cluster.local
          vips: ["10.96.0.21"]
          ports: {"80": 8080}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """
        let s = try testState(yaml)
        #expect(s.endpointSets["payments/ledger.payments.svc.cluster.local"]?.endpoints.map(\.name) == stride(from: 1, to: 40, by: 4).map { "w-\($0)" })
        for key in [0, 1, 7, 9, -3, Int.max, Int.min] {
            let d = s.resolve(SocketAddress("10.96.0.20:80")!, hashKey: key)
            let i = 1 + 4 * Int(key.magnitude % 10)
            #expect(d?.workload?.name == "w-\(i)", "hash key \(key)")
            #expect(d.map { if case let .hbone(_, authority, _) = $0.route { authority } else { nil } } == SocketAddress("10.1.1.\(i):8080"))
        }
    }

    /// istiod may send a workload with no address (a pod not yet given one, a remote one reached only
    /// through its network's gateway). Listing a service, it used to be picked as an endpoint and
    /// its first address read out of an empty list: one such xDS resource, then one connection to
    /// the VIP, trapped the proxy. It is no endpoint now; with no addressed endpoint there is no route.
    @Test func aWorkloadWithoutAnAddressIsNoEndpoint() throws {
        var config = try ProxyConfig.parse(yaml: Self.yaml, file: "test.yaml", environment: [:])
        let key = "payments/ledger.payments.svc.cluster.local"
        let pending = Workload(uid: "Kubernetes//Pod/payments/ledger-1", name: "ledger-1", namespace: "payments", serviceAccount: "ledger",
                               trustDomain: "cluster.local", workloadIps: [], protocol: .hbone, node: "west", clusterId: "Kubernetes",
                               workloadName: "ledger", canonicalName: "ledger", canonicalRevision: "latest", labels: [:],
                               services: [key: [80: 8080]], identity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger"))
        config.workloads.insert(pending, at: 0)
        let s = try ProxyState(config: config, trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")), certificates: [:], version: 1)
        #expect(s.endpointSets[key]?.endpoints.map(\.name) == ["ledger-0"])
        for hashKey in 0..<4 {
            let d = s.resolve(SocketAddress("10.96.0.20:80")!, hashKey: hashKey)
            #expect(d?.workload?.name == "ledger-0", "hash key \(hashKey)")
        }
        config.workloads.removeAll { $0.name == "ledger-0" }
        let alone = try ProxyState(config: config, trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")), certificates: [:], version: 1)
        #expect(alone.resolve(SocketAddress("10.96.0.20:80")!) == nil)
        #expect(alone.resolve(hostname: "ledger.payments.svc.cluster.local", port: 80) == nil)
    }

    /// A ServiceEntry with `resolution: DNS` reaches istiod's proxies as a workload with a hostname
    /// and no address. It used to be left out of its service's endpoints, so a connection to the
    /// service found no endpoint at all; now it is picked, and the route says to look it up first.
    @Test func anEndpointKnownByHostnameIsLookedUpWhenPicked() throws {
        let yaml = """
        workloads:
        - {name: api, namespace: payments, hostname: api.example.com, protocol: TCP,
           services: {"payments/api.example.com": {443: 8443}}}
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20", "fd00::20"], protocol: HBONE,
           node: west, services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}}
        - {name: gw, namespace: istio-system, hostname: gw.example.com, protocol: HBONE, services: {"istio-system/waypoint.example.com": {}}}
        services:
        - {name: api, namespace: payments, hostname: api.example.com, vips: ["240.240.0.1", "2001:db8::1"], ports: {443: 0}}
        - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["10.96.0.20", "fd00::96:20"], ports: {80: 8080}}
        - {name: waypoint, namespace: istio-system, hostname: waypoint.example.com, vips: ["10.96.0.99"], ports: {15008: 0}}
        - {name: behind, namespace: payments, hostname: behind.payments.svc.cluster.local, vips: ["10.96.0.40"], ports: {80: 0},
           waypoint: {destination: "istio-system/waypoint.example.com", hboneMtlsPort: 15008}}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """
        let s = try testState(yaml)
        let key = "payments/api.example.com"
        #expect(s.endpointSets[key]?.endpoints.map(\.name) == ["api"])
        // The port as the endpoint maps it, and the family of the address the client dialled.
        let v4 = s.resolve(SocketAddress("240.240.0.1:443")!)
        #expect(v4?.route == .lookup(hostname: "api.example.com", port: 8443, preferIPv6: false))
        #expect(v4?.workload?.name == "api" && v4?.service?.key == key)
        #expect(s.resolve(SocketAddress("[2001:db8::1]:443")!)?.route == .lookup(hostname: "api.example.com", port: 8443, preferIPv6: true))
        #expect(s.resolve(hostname: "api.example.com", port: 443)?.route == .lookup(hostname: "api.example.com", port: 8443, preferIPv6: false))
        // Once found, the address is reached as the workload's protocol says.
        let found = s.route(to: v4!.workload!, ip: IPAddress("198.51.100.7")!, port: 8443, service: v4?.service)
        #expect(found.route == .direct(SocketAddress("198.51.100.7:8443")!))
        // A dual-stack endpoint is dialled in the family the client used (ztunnel's choice).
        let ledger6 = s.resolve(SocketAddress("[fd00::96:20]:80")!)
        #expect(ledger6.map { if case let .hbone(proxy, _, _) = $0.route { proxy } else { nil } } == SocketAddress("[fd00::20]:15008"))
        let ledger4 = s.resolve(SocketAddress("10.96.0.20:80")!)
        #expect(ledger4.map { if case let .hbone(proxy, _, _) = $0.route { proxy } else { nil } } == SocketAddress("10.1.0.20:15008"))
        // A waypoint known only by hostname is not dialled: the connection is refused, not sent around it.
        guard case .unreachable? = s.resolve(SocketAddress("10.96.0.40:80")!)?.route else {
            Issue.record("\(String(describing: s.resolve(SocketAddress("10.96.0.40:80")!)))")
            return
        }
    }
}
