import Foundation
import Testing
import HBONECore
@testable import HBONEConfig

@Suite struct ConfigTests {
    /// The file from the data-path issue, verbatim apart from paths.
    static let issueExample = """
    workloads:
    - uid: cluster-west//v1/Pod/payments/ledger-0
      name: ledger-0
      namespace: payments
      serviceAccount: ledger
      trustDomain: cluster.local
      workloadIps: ["127.0.0.20"]
      protocol: HBONE
      node: west
    - uid: cluster-east//v1/Pod/payments/checkout-0
      name: checkout-0
      namespace: payments
      serviceAccount: checkout
      trustDomain: cluster.local
      workloadIps: ["127.0.0.10"]
      protocol: HBONE
      node: east
    hbone:
      node: west                          # workloads on this node are local
      trustDomain: cluster.local
      rootCertificates: /path/root-cert.pem   # the trust bundle; several roots allowed
      certificates:
        directory: /path/certs            # <namespace>/<serviceAccount>/cert-chain.pem + key.pem
      listen:
        socks5: 127.0.0.2:15080
        admin: 127.0.0.2:15000
        metrics: 127.0.0.2:15020
        readiness: 127.0.0.2:15021
    """

    @Test func issueExampleLoads() throws {
        let c = try ProxyConfig.parse(yaml: Self.issueExample, file: "/etc/hbone/config.yaml")
        #expect(c.workloads.count == 2)
        #expect(c.localWorkloads.map(\.name) == ["ledger-0"])
        #expect(c.workloads[1].identity.description == "spiffe://cluster.local/ns/payments/sa/checkout")
        #expect(c.settings.listen.socks5 == SocketAddress("127.0.0.2:15080"))
        #expect(c.settings.listen.inboundPort == 15008)
        #expect(c.settings.certificates == .directory("/path/certs"))
        #expect(c.settings.timeouts.connect == .seconds(10))
    }

    @Test func relativePathsResolveAgainstTheConfigDirectory() throws {
        let yaml = Self.issueExample.replacingOccurrences(of: "/path/root-cert.pem", with: "pki/root.pem")
        let c = try ProxyConfig.parse(yaml: yaml, file: "/etc/hbone/config.yaml")
        #expect(c.settings.rootCertificates == "/etc/hbone/pki/root.pem")
    }

    @Test(arguments: [
        ("[\"127.0.0.20\"]", "[\"127.0.0.300\"]", "workloads[0].workloadIps[0]", 7, "\"127.0.0.300\" is not an IP address"),
        ("protocol: HBONE\n  node: west", "protocol: QUIC\n  node: west", "workloads[0].protocol", 8, "must be HBONE or TCP"),
        ("socks5: 127.0.0.2:15080", "socks5: 127.0.0.2", "hbone.listen.socks5", 25, "missing port"),
        ("socks5: 127.0.0.2:15080", "socks5: 10.0.0.2:15080", "hbone.listen.socks5", 25, "loopback"),
        ("trustDomain: cluster.local\n  rootCertificates", "trustDomain: Cluster.Local\n  rootCertificates", "hbone.trustDomain", 20, "lowercase"),
        ("  certificates:\n", "  certificate:\n", "hbone.certificate", 22, "unknown key"),
        ("serviceAccount: ledger", "serviceAccount: \"le dger\"", "workloads[0]", 2, "invalid"),
    ])
    func badValuesNameTheirPathAndLine(find: String, replace: String, path: String, line: Int, reason: String) {
        let yaml = Self.issueExample.replacingOccurrences(of: find, with: replace)
        #expect(yaml != Self.issueExample)
        do {
            _ = try ProxyConfig.parse(yaml: yaml, file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.path == path, "\(error)")
            #expect(error.line == line, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
            #expect(error.description.hasPrefix("c.yaml:\(line): \(path)"), "\(error)")
        }
    }

    @Test func duplicateWorkloadIPRejected() {
        let yaml = Self.issueExample.replacingOccurrences(of: "[\"127.0.0.10\"]", with: "[\"127.0.0.20\"]")
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: yaml, file: "c.yaml") }
    }

    /// Networks may reuse each other's addresses (ztunnel keys addresses by network and IP); one
    /// network may not give an IP to two workloads. A workload naming this node on another
    /// network is not local, and the load says so.
    @Test func aWorkloadIPIsUniqueWithinItsNetwork() throws {
        let yaml = Self.issueExample.replacingOccurrences(of: "[\"127.0.0.10\"]", with: "[\"127.0.0.20\"]")
        let other = yaml.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  network: net-b\n")
        let c = try ProxyConfig.parse(yaml: other, file: "c.yaml")
        #expect(c.workloads.map(\.network) == ["", "net-b"])
        #expect(c.configWarnings.allSatisfy { !$0.contains("network") })
        let both = yaml.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  network: net-b\n")
            .replacingOccurrences(of: "protocol: HBONE\n  node: west\n", with: "protocol: HBONE\n  node: west\n  network: net-b\n")
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: both, file: "c.yaml") }
        let elsewhere = Self.issueExample.replacingOccurrences(of: "protocol: HBONE\n  node: west\n", with: "protocol: HBONE\n  node: west\n  network: net-b\n")
        let e = try ProxyConfig.parse(yaml: elsewhere, file: "c.yaml")
        #expect(e.localWorkloads.isEmpty)
        #expect(e.configWarnings.contains("1 workload(s) on node west (payments/ledger-0 first) are on network \"net-b\", not this proxy's \"\" (hbone.network, NETWORK): they are not served here"))
        // The proxy on net-b serves it: from the file or from ztunnel's NETWORK.
        let onB = try ProxyConfig.parse(yaml: elsewhere.replacingOccurrences(of: "trustDomain: cluster.local\n  rootCertificates", with: "trustDomain: cluster.local\n  network: net-b\n  rootCertificates"), file: "c.yaml")
        #expect(onB.settings.network == "net-b")
        #expect(onB.localWorkloads.map(\.name) == ["ledger-0"])
        let fromEnvironment = try ProxyConfig.parse(yaml: elsewhere, file: "c.yaml", environment: ["NETWORK": "net-b"])
        #expect(fromEnvironment.localWorkloads.map(\.name) == ["ledger-0"])
        #expect(fromEnvironment.otherNetworkNote == nil)
    }

    /// istiod's stand-in for a service's endpoints on another network has no address and names
    /// that network's gateway; any other workload without an address is an error, with its line.
    @Test func onlyAWorkloadBehindANetworkGatewayMayHaveNoAddress() throws {
        let behind = Self.issueExample.replacingOccurrences(of: "  workloadIps: [\"127.0.0.10\"]\n", with: """
          network: net-b
          networkGateway: {destination: "net-b/192.0.2.7", hboneMtlsPort: 15009}

        """)
        let c = try ProxyConfig.parse(yaml: behind, file: "c.yaml")
        #expect(c.workloads[1].workloadIps.isEmpty)
        #expect(c.workloads[1].networkGateway?.description == "net-b/192.0.2.7:15009")
        #expect(!c.configWarnings.contains { $0.contains("networkGateway") })
        let bare = Self.issueExample.replacingOccurrences(of: "  workloadIps: [\"127.0.0.10\"]\n", with: "")
        do {
            _ = try ProxyConfig.parse(yaml: bare, file: "c.yaml")
            Issue.record("accepted a workload without an address or a gateway")
        } catch {
            #expect(error.description.hasPrefix("c.yaml:10: workloads[1]: missing workloadIps"), "\(error)")
        }
        // A ServiceEntry's DNS endpoint: a hostname, looked up when picked.
        let named = Self.issueExample.replacingOccurrences(of: "  workloadIps: [\"127.0.0.10\"]\n", with: "  hostname: api.example.com.\n")
        #expect(try ProxyConfig.parse(yaml: named, file: "c.yaml").workloads[1].hostname == "api.example.com.")
        let wildcard = Self.issueExample.replacingOccurrences(of: "  workloadIps: [\"127.0.0.10\"]\n", with: "  hostname: \"*.example.com\"\n")
        do {
            _ = try ProxyConfig.parse(yaml: wildcard, file: "c.yaml")
            Issue.record("accepted a wildcard to look up")
        } catch {
            #expect(error.description.contains("c.yaml:") && error.description.contains("is not a DNS name to resolve"), "\(error)")
        }
    }

    /// ztunnel's spellings of what load balancing reads, which hbone used to accept and ignore
    /// (`status` silently; the others with an "accepted but not used" warning).
    @Test func loadBalancingHealthLocalityAndCapacityAreRead() throws {
        let yaml = Self.issueExample.replacingOccurrences(of: "  node: east\n", with: """
          node: east
          status: Unhealthy
          locality: {region: us-east1, zone: us-east1-b}
          capacity: 4
        services:
        - name: ledger
          namespace: payments
          vips: ["10.96.0.20"]
          loadBalancer: {routingPreferences: [Network, Region, Zone, Subzone], mode: Failover, healthPolicy: AllowAll}

        """)
        let c = try ProxyConfig.parse(yaml: yaml, file: "c.yaml")
        #expect(c.workloads[1].status == .unhealthy && c.workloads[1].capacity == 4)
        #expect(c.workloads[1].locality == Locality(region: "us-east1", zone: "us-east1-b"))
        #expect(c.workloads[0].status == .healthy && c.workloads[0].capacity == 1 && c.workloads[0].locality == Locality())
        #expect(c.services[0].loadBalancer == LoadBalancer(routingPreferences: [.network, .region, .zone, .subzone], mode: .failover, healthPolicy: .allowAll))
        #expect(c.configWarnings.isEmpty, "\(c.configWarnings)")
    }

    @Test(arguments: [
        ("status: Ready", "c.yaml:18: workloads[1].status: \"Ready\" must be one of Healthy, Unhealthy"),
        ("capacity: -1", "c.yaml:18: workloads[1].capacity: must be in 0...4294967295"),
        ("locality: {region: r, rack: 7}", "c.yaml:18: workloads[1].locality.rack: unknown key (allowed: region, subzone, zone)"),
        ("services: {x/y: {80: 80}}\nservices:\n- {name: y, namespace: x, loadBalancer: {mode: PreferClose}}",
         "c.yaml:20: services[0].loadBalancer.mode: \"PreferClose\" must be one of Standard, Strict, Failover, Passthrough"),
        ("services: {x/y: {80: 80}}\nservices:\n- {name: y, namespace: x, loadBalancer: {routingPreferences: [Zone, Rack]}}",
         "c.yaml:20: services[0].loadBalancer.routingPreferences[1]: \"Rack\" must be one of Region, Zone, Subzone, Node, Cluster, Network"),
    ])
    func badLoadBalancingSettingsSayWhereAndWhat(_ line: String, error want: String) {
        let yaml = Self.issueExample.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  \(line)\n")
        do {
            _ = try ProxyConfig.parse(yaml: yaml, file: "c.yaml")
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.description.hasPrefix(want), "\(error)")
        }
    }

    /// ztunnel's applicationTunnel (a waypoint that takes tunnels itself): read, not warned about.
    @Test func applicationTunnelsAreRead() throws {
        let yaml = Self.issueExample.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  applicationTunnel: {protocol: PROXY, port: 15088}\n")
        let c = try ProxyConfig.parse(yaml: yaml, file: "c.yaml")
        #expect(c.workloads[1].applicationTunnel == ApplicationTunnel(protocol: .proxy, port: 15088))
        #expect(c.workloads[0].applicationTunnel == nil)
        #expect(c.configWarnings.isEmpty, "\(c.configWarnings)")
        let bare = try ProxyConfig.parse(yaml: Self.issueExample.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  applicationTunnel: {}\n"), file: "c.yaml")
        #expect(bare.workloads[1].applicationTunnel == ApplicationTunnel(protocol: .none, port: nil))
        for (line, want) in [("applicationTunnel: {protocol: HTTP}", "c.yaml:18: workloads[1].applicationTunnel.protocol: \"HTTP\" must be one of NONE, PROXY"),
                             ("applicationTunnel: {protocol: PROXY, port: 0}", "c.yaml:18: workloads[1].applicationTunnel.port: must be in 1...65535")] {
            do {
                _ = try ProxyConfig.parse(yaml: Self.issueExample.replacingOccurrences(of: "  node: east\n", with: "  node: east\n  \(line)\n"), file: "c.yaml")
                Issue.record("accepted \(line)")
            } catch {
                #expect(error.description.hasPrefix(want), "\(error)")
            }
        }
    }

    @Test func brokenYAMLReportsItsLine() {
        do {
            _ = try ProxyConfig.parse(yaml: "workloads:\n- name: [unclosed\n", file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.line != nil)
            #expect(error.reason.contains("invalid YAML"))
        }
    }

    @Test func ztunnelPoliciesAndServicesParse() throws {
        let yaml = Self.issueExample + """

        services:
        - name: ledger
          namespace: payments
          hostname: ledger.payments.svc.cluster.local
          vips: ["/10.96.0.20"]
          ports: {"80": 8080}
        policies:

        """ + Self.allowCheckout + """

            - - destinationPorts: [8080]
        """
        let c = try ProxyConfig.parse(yaml: yaml, file: "c.yaml")
        #expect(c.services[0].vips == [IPAddress("10.96.0.20")!])
        #expect(c.services[0].ports[80] == 8080)
        #expect(c.policies.count == 1)
        #expect(c.policies[0].rules[0].count == 2)
    }

    static let allowCheckout = """
    - name: allow-checkout
      namespace: payments
      scope: Namespace
      action: Allow
      rules:
      - - - principals: [{Exact: "cluster.local/ns/payments/sa/checkout"}]
    """

    @Test func aPolicyDefinedTwiceIsAnError() throws {
        do {
            _ = try ProxyConfig.parse(yaml: Self.issueExample + "\npolicies:\n" + Self.allowCheckout + "\n" + Self.allowCheckout, file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.reason == "policy payments/allow-checkout is also defined at line 30")
            #expect(error.line == 36)
        }
        // The same name in the LocalConfig and in an Istio policy file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hbone-config-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-checkout, namespace: payments}
        spec: {}
        """.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
        let withDir = Self.issueExample + "\n  authorizationPolicies: [\"\(dir)\"]\npolicies:\n" + Self.allowCheckout
        do {
            _ = try ProxyConfig.parse(yaml: withDir, file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.file == dir + "/p.yaml" && error.line == 1)
            #expect(error.reason == "AuthorizationPolicy payments/allow-checkout is also defined in c.yaml:31 (policies)")
        }
    }

    @Test func environmentExpansion() throws {
        let yaml = Self.issueExample.replacingOccurrences(of: "node: west                          # workloads", with: "node: ${NODE_NAME}   # workloads")
        let c = try ProxyConfig.parse(yaml: yaml, file: "c.yaml", environment: ["NODE_NAME": "west"])
        #expect(c.localWorkloads.map(\.name) == ["ledger-0"])
        do {
            _ = try ProxyConfig.parse(yaml: yaml, file: "c.yaml", environment: [:])
            Issue.record("accepted an unset variable")
        } catch {
            #expect(error.line == 19)
            #expect(error.reason == "environment variable NODE_NAME is not set")
        }
        #expect(try ProxyConfig.expandEnvironment("a: $${LITERAL}", file: "f", environment: [:]) == "a: ${LITERAL}")
    }

    @Test(arguments: [("250ms", 250), ("10s", 10_000), ("5m", 300_000), ("24h", 86_400_000), ("3", 3000)])
    func durations(text: String, millis: Int64) {
        #expect(parseDuration(text) == .milliseconds(millis))
    }

    @Test func badDurations() {
        #expect(parseDuration("-1s") == nil)
        #expect(parseDuration("ten seconds") == nil)
        // Found by fuzzing: a huge number used to trap converting to Int64.
        #expect(parseDuration(String(repeating: "3", count: 90) + "h") == nil)
        #expect(parseDuration("1e300") == nil)
        #expect(parseDuration("inf") == nil)
        #expect(parseDuration("nan") == nil)
        #expect(parseDuration("36500d") == .seconds(36500 * 86400))
        #expect(parseDuration("36501d") == nil)
    }

    /// The fuzzer's input: an error with the line, not a crash.
    @Test func anOverlongDurationInTheFileIsAnError() {
        let yaml = "hbone: {node: x, rootCertificates: /r, certificates: {ca: /c, ttl: \(String(repeating: "3", count: 90))h}}"
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: yaml, file: "f.yaml", environment: [:]) }
    }
}
