import Testing
import HBONECore
import HBONEIdentity
import HBONEAuthz
@testable import HBONEConfig

/// Policy values that parse but cannot mean what was written are named with their path, and
/// service-account matches restrict as they say (an ignored one used to match every source).
@Suite struct PolicyLintTests {
    // Security regression: `serviceAccounts` was accepted and ignored, so this ALLOW admitted anyone.
    @Test func anIstioServiceAccountsAllowAdmitsOnlyThoseAccounts() throws {
        let y = ap("only-ledger", "  action: ALLOW\n  rules:\n  - from:\n    - source: {serviceAccounts: [\"payments/ledger\"]}")
        #expect(try !decide(y, from: checkoutP).allowed)
        #expect(try decide(y, from: "cluster.local/ns/payments/sa/ledger").allowed)
        let deny = ap("not-ledger", "  action: DENY\n  rules:\n  - from:\n    - source: {notServiceAccounts: [\"payments/ledger\"]}")
        #expect(try !decide(deny, from: checkoutP).allowed)
        #expect(throws: ConfigError.self) { _ = try decide(ap("bad", "  rules:\n  - from:\n    - source: {serviceAccounts: [\"ledger\"]}"), from: checkoutP) }
    }

    @Test func aLocalConfigServiceAccountsAllowAdmitsOnlyThoseAccounts() throws {
        let yaml = """
        policies:
        - name: only-ledger
          namespace: payments
          scope: Namespace
          action: Allow
          rules:
          - - - serviceAccounts: [{namespace: payments, serviceAccount: ledger}]
        hbone: {node: n, rootCertificates: /r.pem, certificates: {directory: /c}}
        """
        let config = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: [:])
        let set = PolicySet(config.policies)
        func allowed(_ principal: String) throws -> Bool {
            set.decide(ConnectionFacts(source: try SPIFFEID(parsing: "spiffe://" + principal), sourceIP: IPAddress("10.1.0.5")!,
                                       destinationIP: IPAddress("10.2.0.9")!, destinationPort: 8080),
                       for: PolicyTarget(namespace: "payments", labels: [:])).allowed
        }
        #expect(try !allowed(checkoutP))
        #expect(try allowed("cluster.local/ns/payments/sa/ledger"))
    }

    @Test func hostileValuesAreNamedWithTheirPath() throws {
        let y = ap("hostile", """
          rules:
          - from:
            - source: {principals: ["spiffe://cluster.local/ns/payments/sa/checkout", "cluster.local/ns/*/sa/x"], ipBlocks: ["10.0.0.1/8"]}
        """)
        let r = try IstioPolicyLoader.parse(yaml: y, file: "p.yaml", rootNamespace: "istio-system")
        let all = r.warnings.joined(separator: "\n")
        #expect(all.contains("principals[0]: \"spiffe://cluster.local/ns/payments/sa/checkout\" can never match"), "\(all)")
        #expect(all.contains("principals[1]: \"cluster.local/ns/*/sa/x\": * is a wildcard only at the start or the end"), "\(all)")
        #expect(all.contains("ipBlocks[0]: \"10.0.0.1/8\" has host bits set; it matches all of 10.0.0.0/8"), "\(all)")
        // LocalConfig ports are numbers, as ztunnel reads them.
        let local = """
        policies:
        - {name: p, namespace: payments, rules: [[[{destinationPorts: ["80"]}]]]}
        hbone: {node: n, rootCertificates: /r.pem, certificates: {directory: /c}}
        """
        do throws(ConfigError) {
            _ = try ProxyConfig.parse(yaml: local, file: "/c.yaml", environment: [:])
            Issue.record("a string port was accepted")
        } catch {
            #expect(error.path.contains("destinationPorts[0]") && error.reason.contains("is a string"), "\(error)")
        }
    }

    /// A config in the shape of ztunnel's own example LocalConfig (its keys, written here anew):
    /// it loads, and keys whose meaning hbone does not act on are said once each.
    @Test func ztunnelsLocalConfigShapeLoads() throws {
        let yaml = """
        workloads:
        - uid: cluster1//v1/Pod/default/app
          name: app
          namespace: default
          serviceAccount: default
          workloadIps: ["127.0.0.1"]
          protocol: HBONE
          node: local
          network: ""
          waypoint: {destination: "/127.0.0.9"}
          services:
            "default/app.example":
              80: 8080
        - uid: cluster1//v1/Pod/default/app-tcp
          name: app-tcp
          namespace: default
          serviceAccount: default
          workloadIps: ["127.0.0.2"]
          protocol: TCP
          node: local
          network: ""
          waypoint: {destination: "/127.0.0.9"}
          services:
            "default/app.example":
              80: 8080
        policies:
          - action: Allow
            rules:
            - - - notDestinationPorts:
                  - 9999
            name: allow-but-9999
            namespace: default
            scope: Namespace
            dryRun: false
        services:
        - name: app
          namespace: default
          hostname: app.example
          vips:
            - /127.10.0.1
            - net2/127.10.0.2
          ports:
            80: 8080
          subjectAltNames:
           - spiffe://cluster.local/ns/default/sa/default
          canonical: true
        hbone: {node: local, rootCertificates: /r.pem, certificates: {directory: /c}}
        """
        let config = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: [:])
        #expect(config.workloads.count == 2 && config.localWorkloads.count == 2)
        #expect(config.services.first?.canonical == true && config.services.first?.addresses.contains(NetworkAddress(network: "net2", ip: IPAddress("127.10.0.2")!)) == true)
        #expect(config.policies.first?.rules.first?.first?.first?.notDestinationPorts == [9999])
        #expect(config.configWarnings.isEmpty, "\(config.configWarnings)")
        #expect(config.workloads.map { $0.waypoint?.destination } == Array(repeating: .address(network: "", ip: IPAddress("127.0.0.9")!), count: 2))
        #expect(config.workloads.first?.waypoint?.hboneMtlsPort == 15008)
    }
}
