import HBONECore
import HBONEConfig
import HBONETLS
import HBONEProxy

/// A mesh as the proxy's routing sees it: `services` services of `endpoints` workloads each, on
/// other nodes, every workload listing its one service (10,000 workloads by default).
public enum MeshFixtures {
    public static func state(services: Int = 1000, endpoints: Int = 10) throws -> ProxyState {
        var yaml = "workloads:\n"
        for s in 0..<services {
            for e in 0..<endpoints {
                let n = s * endpoints + e
                yaml += """
                - name: w-\(n)
                  namespace: ns-\(s)
                  serviceAccount: sa-\(s)
                  workloadIps: ["10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)"]
                  protocol: HBONE
                  node: node-\(n % 50)
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
              vips: ["10.96.\(s >> 8 & 255).\(s & 255)"]
              ports: {"80": 8080}

            """
        }
        yaml += "hbone:\n  node: east\n  rootCertificates: /unused\n  certificates: {directory: /unused}\n"
        let config = try ProxyConfig.parse(yaml: yaml, file: "mesh.yaml", environment: [:])
        return try ProxyState(config: config, trust: InMemoryPKI().trust, certificates: [:], version: 1)
    }

    /// A service's VIP in `state(services:endpoints:)`, port 80.
    public static func vip(_ service: Int) -> SocketAddress { SocketAddress(ip: IPAddress("10.96.\(service >> 8 & 255).\(service & 255)")!, port: 80) }
    /// The first endpoint of a service, port 8080.
    public static func endpoint(_ service: Int, endpoints: Int = 10) -> SocketAddress {
        let n = service * endpoints
        return SocketAddress(ip: IPAddress("10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)")!, port: 8080)
    }
}
