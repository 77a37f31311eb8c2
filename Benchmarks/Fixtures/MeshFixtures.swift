import HBONECore
import HBONEConfig
import HBONETLS
import HBONEProxy

/// A mesh as the proxy's routing sees it: `services` services of `endpoints` workloads each, on
/// other nodes, every workload listing its one service (10,000 workloads by default).
public enum MeshFixtures {
    /// Each workload is in one of 2 regions and 6 zones, on one of 50 nodes; `loadBalancer`: each
    /// service's (e.g. `preferClose`, `nodeLocal`).
    /// `cidrServices`: that many egress ServiceEntries more, each with a /24 CIDR VIP in
    /// 172.16.0.0/12 (`cidrBlockAddress`), and one /12 over all of them.
    public static func state(services: Int = 1000, endpoints: Int = 10, loadBalancer: String? = nil, cidrServices: Int = 0) throws -> ProxyState {
        let config = try config(services: services, endpoints: endpoints, loadBalancer: loadBalancer, cidrServices: cidrServices)
        return try ProxyState(config: config, trust: trust, certificates: [:], version: 1)
    }

    /// An empty trust bundle, for snapshots built from `config`.
    public static let trust = try! InMemoryPKI().trust

    /// The config `state` is built from.
    public static func config(services: Int = 1000, endpoints: Int = 10, loadBalancer: String? = nil, cidrServices: Int = 0) throws -> ProxyConfig {
        var yaml = "workloads:\n"
        for s in 0..<services {
            for e in 0..<endpoints {
                let n = s * endpoints + e
                yaml += """
                - name: w-\(n)
                  namespace: ns-\(s)
                  serviceAccount: sa-\(s)
                  workloadIps: ["\(workloadIP(n))"]
                  protocol: HBONE
                  node: node-\(n % 50)
                  locality: {region: r-\(n % 2), zone: z-\(n % 6)}
                  services:
                    "ns-\(s)/svc-\(s).ns-\(s).svc.cluster.local": {80: 8080}

                """
            }
        }
        yaml += "services:\n"
        for s in 0..<services {
            yaml += """
            - name: svc-\(s)
              namespace: ns-\(s)
              hostname: svc-\(s).ns-\(s).svc.cluster.local
              vips: ["\(vipIP(s))"]
              ports: {"80": 8080}
            \(loadBalancer.map { "  loadBalancer: \($0)\n" } ?? "")
            """
        }
        for c in 0..<cidrServices {
            yaml += "- {name: egress-\(c), namespace: egress, hostname: egress-\(c).example.com, cidrVips: [\"\(cidrBlockAddress(c, host: 0))/24\"], ports: {\"443\": 443}}\n"
        }
        if cidrServices > 0 {
            yaml += "- {name: egress-all, namespace: egress, hostname: egress.example.com, cidrVips: [\"172.16.0.0/12\"], ports: {\"443\": 443}}\n"
        }
        yaml += "hbone:\n  node: east\n  rootCertificates: /unused\n  certificates: {directory: /unused}\n"
        return try ProxyConfig.parse(yaml: yaml, file: "mesh.yaml", environment: [:])
    }

    /// Kubernetes `trafficDistribution: PreferClose`, as istiod sends it.
    public static let preferClose = "{mode: Failover, routingPreferences: [Network, Region, Zone, Subzone]}"
    /// Kubernetes `internalTrafficPolicy: Local`, as istiod sends it.
    public static let nodeLocal = "{mode: Strict, routingPreferences: [Node]}"

    /// A service's VIP in `state(services:endpoints:)`, port 80.
    public static func vip(_ service: Int) -> SocketAddress { SocketAddress(ip: IPAddress(vipIP(service))!, port: 80) }
    /// The first endpoint of a service, port 8080.
    public static func endpoint(_ service: Int, endpoints: Int = 10) -> SocketAddress {
        SocketAddress(ip: IPAddress(workloadIP(service * endpoints))!, port: 8080)
    }

    /// Workload `n`'s address, no port (a connection's source).
    public static func workload(_ n: Int) -> IPAddress { IPAddress(workloadIP(n))! }

    /// Host `host` in CIDR service `c`'s /24.
    public static func cidrBlockAddress(_ c: Int, host: Int) -> String { "172.\(16 + (c >> 8 & 15)).\(c & 255).\(host)" }

    /// Workload `n`'s address (10.0.0.0/8) and service `s`'s VIP (10.96.0.0/16).
    static func workloadIP(_ n: Int) -> String { "10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)" }
    static func vipIP(_ s: Int) -> String { "10.96.\(s >> 8 & 255).\(s & 255)" }
}
