import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
import HBONEDNS
@testable import HBONEProxy

/// Names the DNS proxy answers itself, as ztunnel does: a service's hostname from the client's
/// point of view (its namespace's search domains, the short Kubernetes forms, wildcards), the VIPs
/// on the client's network, a headless service's healthy endpoints; everything else is forwarded.
@Suite struct DNSResolutionTests {
    static let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, workloadIps: ["10.0.0.1"], protocol: HBONE, node: east, canonicalName: checkout}
        - {name: web-0, namespace: shop, workloadIps: ["10.0.0.2"], protocol: HBONE, node: east}
        - {name: remote-0, namespace: payments, workloadIps: ["10.0.0.3"], protocol: HBONE, node: east, network: far}
        - {name: db-0, namespace: payments, workloadIps: ["10.1.0.1", "fd00::1:1"], protocol: HBONE, node: west, services: {"payments/db.payments.svc.cluster.local": {5432: 5432}}}
        - {name: db-1, namespace: payments, workloadIps: ["10.1.0.2"], protocol: HBONE, node: west, status: Unhealthy, services: {"payments/db.payments.svc.cluster.local": {5432: 5432}}}
        - {name: db-2, namespace: payments, workloadIps: ["10.1.0.3"], protocol: HBONE, node: west, services: {"payments/db.payments.svc.cluster.local": {5432: 5432}}}
        - {name: cache-0, namespace: payments, workloadIps: ["10.1.0.9", "fd00::1:9"], protocol: HBONE, node: west, services: {"payments/cache.payments.svc.cluster.local": {6379: 6379}}}
        services:
        - {name: ledger, namespace: payments, vips: ["10.96.0.10", "fd00::10", "far/10.200.0.10"], ports: {"80": 8080}}
        - {name: cache, namespace: payments, ports: {"6379": 6379}, ipFamilies: IPv4}
        - {name: db, namespace: payments, ports: {"5432": 5432}}
        - {name: wild, namespace: shop, hostname: "*.example.com", vips: ["240.240.0.5"], ports: {"443": 443}}
        - {name: external, namespace: shop, hostname: "noaddress.example.org", ports: {"443": 443}}
        - {name: private, namespace: payments, hostname: private.payments.svc.cluster.local, vips: ["10.96.0.11"], ports: {"80": 80}, visibility: Namespace}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """

    func resolve(_ s: ProxyState, _ name: String, _ type: UInt16 = DNSType.a, from client: String? = "10.0.0.1") -> DNSResolution {
        // By address among all workloads (`workloadsByIP` holds this network's only).
        s.resolveDNS(DNSName(name)!, type: type, client: client.flatMap { ip in s.config.workloads.first { $0.workloadIps.contains(IPAddress(ip)!) } })
    }

    func a(_ name: String, _ ip: UInt32) -> DNSRecord { DNSRecord(name: DNSName(name)!, ttl: 30, data: .a(ip)) }

    @Test func aServiceIsFoundByEveryNameAPodMayUse() throws {
        let s = try testState(Self.yaml)
        let vip: UInt32 = 0x0a60000a
        // The full name and the forms Kubernetes' search domains complete.
        #expect(resolve(s, "ledger.payments.svc.cluster.local") == .answer([a("ledger.payments.svc.cluster.local", vip)]))
        #expect(resolve(s, "Ledger.Payments.svc.cluster.local.") == .answer([a("Ledger.Payments.svc.cluster.local", vip)]))
        #expect(resolve(s, "ledger") == .answer([a("ledger", vip)]))
        #expect(resolve(s, "ledger.payments") == .answer([a("ledger.payments", vip)]))
        #expect(resolve(s, "ledger.payments.svc") == .answer([a("ledger.payments.svc", vip)]))
        // A resolver that appended the client's search domain to a short name: CNAME to the name
        // without it, then its address (ztunnel's answer).
        let cname = DNSRecord(name: DNSName("ledger.payments.payments.svc.cluster.local")!, ttl: 30, data: .cname(DNSName("ledger.payments")!))
        #expect(resolve(s, "ledger.payments.payments.svc.cluster.local") == .answer([cname, a("ledger.payments", vip)]))
        // `ledger` alone means the client's namespace: from shop there is no such service.
        #expect(resolve(s, "ledger", from: "10.0.0.2") == .forward)
        #expect(resolve(s, "ledger.payments", from: "10.0.0.2") == .answer([a("ledger.payments", vip)]))
    }

    @Test func theAddressesAreTheOnesTheClientCanReach() throws {
        let s = try testState(Self.yaml)
        let v6 = DNSRecord(name: DNSName("ledger.payments")!, ttl: 30, data: .aaaa([0xfd, 0] + [UInt8](repeating: 0, count: 13) + [0x10]))
        #expect(resolve(s, "ledger.payments", DNSType.aaaa) == .answer([v6]))
        // From the other network, that network's VIP.
        #expect(resolve(s, "ledger.payments", from: "10.0.0.3") == .answer([a("ledger.payments", 0x0ac8000a)]))
        #expect(resolve(s, "ledger.payments", DNSType.aaaa, from: "10.0.0.3") == .answer([]))
        // Other types are forwarded, as are names the mesh does not hold.
        #expect(resolve(s, "ledger.payments", 16) == .forward)
        #expect(resolve(s, "www.google.com") == .forward)
        #expect(resolve(s, "nothing.payments.svc.cluster.local") == .forward)
    }

    @Test func aHeadlessServiceAnswersWithItsHealthyEndpoints() throws {
        let s = try testState(Self.yaml)
        guard case let .answer(records) = resolve(s, "db.payments.svc.cluster.local") else { Issue.record("forwarded"); return }
        #expect(Set(records.map(\.data)) == [.a(0x0a010001), .a(0x0a010003)])   // db-1 is unhealthy
        guard case let .answer(v6) = resolve(s, "db", DNSType.aaaa) else { Issue.record("forwarded"); return }
        #expect(v6.count == 1)
        // Successive answers start at successive addresses (clients spread over them).
        let first = s.resolveDNS(DNSName("db")!, type: DNSType.a, client: s.workloadsByIP[IPAddress("10.0.0.1")!], rotate: 0)
        let second = s.resolveDNS(DNSName("db")!, type: DNSType.a, client: s.workloadsByIP[IPAddress("10.0.0.1")!], rotate: 1)
        #expect(first != second)
    }

    /// With IPv6 off (ztunnel's IPV6_ENABLED=false) a mesh name's AAAA question has no address,
    /// still answered here (the name exists), and A questions are unchanged.
    @Test func withIPv6OffAAAAQuestionsHaveNoAddress() throws {
        let s = try testState(Self.yaml.replacingOccurrences(of: "  node: east\n  rootCertificates", with: "  node: east\n  ipv6Enabled: false\n  rootCertificates"))
        #expect(!s.settings.ipv6Enabled)
        #expect(resolve(s, "ledger.payments", DNSType.aaaa) == .answer([]))
        #expect(resolve(s, "db", DNSType.aaaa) == .answer([]))
        #expect(resolve(s, "ledger.payments") == .answer([a("ledger.payments", 0x0a60000a)]))
        #expect(resolve(s, "www.google.com", DNSType.aaaa) == .forward)
    }

    /// A single-stack headless service answers in its family only, though its pods are dual-stack.
    @Test func aSingleStackServiceHasNoAddressOfTheOtherFamily() throws {
        let s = try testState(Self.yaml)
        #expect(resolve(s, "cache") == .answer([a("cache", 0x0a010009)]))
        #expect(resolve(s, "cache", DNSType.aaaa) == .answer([]))
        let bad = Self.yaml.replacingOccurrences(of: "ipFamilies: IPv4", with: "ipFamilies: IPv5")
        do {
            _ = try ProxyConfig.parse(yaml: bad, file: "t.yaml", environment: [:])
            Issue.record("accepted")
        } catch { #expect("\(error)".contains("ipFamilies") && "\(error)".contains("IPv4"), "\(error)") }
    }

    @Test func wildcardsVisibilityAndServiceEntriesWithoutAddresses() throws {
        let s = try testState(Self.yaml)
        #expect(resolve(s, "api.example.com") == .answer([a("api.example.com", 0xf0f00005)]))
        #expect(resolve(s, "a.b.example.com") == .answer([a("a.b.example.com", 0xf0f00005)]))
        #expect(resolve(s, "example.com") == .forward)
        // No VIP and not a Kubernetes service: left to upstream DNS.
        #expect(resolve(s, "noaddress.example.org") == .forward)
        // Visible to its own namespace only.
        #expect(resolve(s, "private.payments") == .answer([a("private.payments", 0x0a60000b)]))
        #expect(resolve(s, "private.payments", from: "10.0.0.2") == .forward)
        // A client the proxy does not know sees full names only (no namespace to search).
        #expect(resolve(s, "ledger.payments.svc.cluster.local", from: nil) == .answer([a("ledger.payments.svc.cluster.local", 0x0a60000a)]))
        #expect(resolve(s, "ledger", from: nil) == .forward)
    }

    /// One hostname in several namespaces: the client's own namespace, then one marked canonical,
    /// then ztunnel's PREFERED_SERVICE_NAMESPACE, then the first.
    @Test func aNameInSeveralNamespacesPrefersTheConfiguredOne() throws {
        let shared = Self.yaml.replacingOccurrences(of: "\nhbone:\n", with: """

            - {name: api, namespace: alpha, hostname: api.corp.example, vips: ["240.0.0.1"], ports: {"443": 443}}
            - {name: api, namespace: team, hostname: api.corp.example, vips: ["240.0.0.2"], ports: {"443": 443}}
            - {name: api, namespace: shop, hostname: api.corp.example, vips: ["240.0.0.3"], ports: {"443": 443}}
            hbone:

            """)
        func answer(_ s: ProxyState, from client: String) -> DNSResolution { resolve(s, "api.corp.example", from: client) }
        let plain = try testState(shared)
        #expect(answer(plain, from: "10.0.0.1") == .answer([a("api.corp.example", 0xf000_0001)]))
        #expect(answer(plain, from: "10.0.0.2") == .answer([a("api.corp.example", 0xf000_0003)]))
        let preferring = try testState(shared, environment: ["PREFERED_SERVICE_NAMESPACE": "team"])
        #expect(preferring.settings.dns.preferredServiceNamespace == "team")
        #expect(answer(preferring, from: "10.0.0.1") == .answer([a("api.corp.example", 0xf000_0002)]))
        // The client's own namespace still wins.
        #expect(answer(preferring, from: "10.0.0.2") == .answer([a("api.corp.example", 0xf000_0003)]))
        // Connections to a VIP are not affected; names are.
        let fromFile = try testState(shared.replacingOccurrences(of: "  certificates: {directory: /unused}",
                                                                 with: "  certificates: {directory: /unused}\n  dns: {preferredServiceNamespace: team}"))
        #expect(answer(fromFile, from: "10.0.0.1") == .answer([a("api.corp.example", 0xf000_0002)]))
        // A canonical one beats the preferred namespace.
        let canonical = try testState(shared.replacingOccurrences(of: "namespace: alpha, hostname: api.corp.example, vips: [\"240.0.0.1\"], ports: {\"443\": 443}",
                                                                  with: "namespace: alpha, hostname: api.corp.example, vips: [\"240.0.0.1\"], ports: {\"443\": 443}, canonical: true"),
                                      environment: ["PREFERED_SERVICE_NAMESPACE": "team"])
        #expect(answer(canonical, from: "10.0.0.1") == .answer([a("api.corp.example", 0xf000_0001)]))
    }

    @Test func settingsAndZtunnelsVariables() throws {
        let file = Self.yaml.replacingOccurrences(of: "  certificates: {directory: /unused}",
                                                  with: "  certificates: {directory: /unused}\n  dns: {address: \"127.0.0.1:15053\", upstreams: [\"10.96.0.53\", \"[fd00::53]:5353\"], clusterDomain: corp.local}")
        let c = try ProxyConfig.parse(yaml: file, file: "test.yaml", environment: [:])
        #expect(c.settings.dnsEnabled && c.settings.dns.address == SocketAddress("127.0.0.1:15053"))
        #expect(c.settings.dns.upstreams == [SocketAddress("10.96.0.53:53")!, SocketAddress("[fd00::53]:5353")!])
        #expect(c.settings.dns.clusterDomain == "corp.local")
        let off = try ProxyConfig.parse(yaml: file, file: "test.yaml", environment: ["ISTIO_META_DNS_CAPTURE": "false", "CLUSTER_DOMAIN": "c.local"])
        #expect(!off.settings.dnsEnabled && off.settings.dns.clusterDomain == "c.local")
        // Node mode without an address: off; in-pod mode: on by default, as in ztunnel.
        #expect(!(try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: [:])).settings.dnsEnabled)
        let inPod = try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: ["INPOD_UDS": "/x.sock"]).settings
        #expect(inPod.dnsEnabled && inPod.dnsAddress == SocketAddress("127.0.0.1:15053"))
        // Switched on in node mode without an address: ztunnel's default address.
        let on = try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: ["ISTIO_META_DNS_CAPTURE": "TRUE"]).settings
        #expect(on.dnsAddress == SocketAddress("127.0.0.1:15053"))
        let moved = try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: ["INPOD_UDS": "/x.sock", "ISTIO_META_DNS_PROXY_ADDR": "localhost:5353"])
        #expect(moved.settings.dns.address == SocketAddress("127.0.0.1:5353"))
        for (env, expected) in [(["ISTIO_META_DNS_CAPTURE": "yes"], "environment ISTIO_META_DNS_CAPTURE"),
                                (["ISTIO_META_DNS_PROXY_ADDR": "here"], "environment ISTIO_META_DNS_PROXY_ADDR"),
                                (["CLUSTER_DOMAIN": "a..b"], "environment CLUSTER_DOMAIN")] {
            #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: env) }
            do { _ = try ProxyConfig.parse(yaml: Self.yaml, file: "t.yaml", environment: env) } catch { #expect("\(error)".contains(expected), "\(error)") }
        }
        let bad = Self.yaml.replacingOccurrences(of: "  certificates: {directory: /unused}", with: "  certificates: {directory: /unused}\n  dns: {upstreams: [\"dns.example\"]}")
        do {
            _ = try ProxyConfig.parse(yaml: bad, file: "t.yaml", environment: [:])
            Issue.record("accepted")
        } catch { #expect("\(error)".contains("t.yaml:") && "\(error)".contains("dns.upstreams") && "\(error)".contains("not an address"), "\(error)") }
        #expect(ResolvConf(parsing: "search a.svc\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n# x\noptions ndots:5\n").nameservers
                == [SocketAddress("10.96.0.10:53")!])
    }

    /// An address reachable from other hosts is no open resolver: only this host, the mesh's
    /// workloads, and (in-pod) the pod itself may ask.
    @Test func onlyThisHostAndTheMeshMayAsk() throws {
        let s = try testState(Self.yaml)
        let workload = s.workloadsByIP[IPAddress("10.0.0.1")!]
        #expect(DNSServer.admits(peer: SocketAddress("127.0.0.1:5000")!, client: nil, inPod: false))
        #expect(DNSServer.admits(peer: SocketAddress("[::1]:5000")!, client: nil, inPod: false))
        #expect(DNSServer.admits(peer: SocketAddress("10.0.0.1:5000")!, client: workload, inPod: false))
        #expect(!DNSServer.admits(peer: SocketAddress("198.51.100.7:5000")!, client: nil, inPod: false))
        #expect(DNSServer.admits(peer: SocketAddress("127.0.0.1:5000")!, client: workload, inPod: true))
    }
}
