import Foundation
import Testing
import HBONECore
@testable import HBONEConfig

/// istiod and CA settings as ztunnel names them: the environment over `hbone.xds`/`hbone.ca` over
/// ztunnel's defaults, and a bad value names where it came from.
@Suite struct ControlPlaneSettingsTests {
    static func config(_ extra: String = "", environment: [String: String] = [:]) throws(ConfigError) -> ControlPlaneSettings {
        let yaml = """
        hbone:
          node: east
          rootCertificates: /r.pem
          certificates: {directory: /certs}
        \(extra)
        """
        return try ProxyConfig.parse(yaml: yaml, file: "/etc/hbone/config.yaml", environment: environment).settings.controlPlane
    }

    @Test func ztunnelsDefaults() throws {
        let c = try Self.config()
        #expect(c.xdsAddress == nil)   // workloads from the file only
        #expect(c.caAddress.description == "https://istiod.istio-system.svc:15012")
        #expect(c.caRootCertificate == "./var/run/secrets/istio/root-cert.pem")
        #expect(c.authToken == "./var/run/secrets/tokens/istio-token")
        #expect(c.clusterID == "Kubernetes")
        #expect(c.secretTTL == .seconds(86_400))
        #expect(c.nodeID == "ztunnel~1.1.1.1~.~.svc.cluster.local")
    }

    @Test func theFileSetsThemAndRelativePathsFollowTheFile() throws {
        let c = try Self.config("""
          xds: {address: "https://istiod.istio-system.svc:15012", rootCertificate: xds-root.pem, altHostname: istiod.example,
                headers: {X-Tenant: blue}, authToken: token, clusterId: east, podName: hbone-abc, podNamespace: istio-system,
                instanceIP: 10.0.0.5}
          ca: {address: "https://ca.example:15012", headers: {x-ca: one}, secretTTL: 12h}
        """)
        #expect(c.xdsAddress?.description == "https://istiod.istio-system.svc:15012")
        #expect(c.xdsRootCertificate == "/etc/hbone/xds-root.pem")
        #expect(c.authToken == "/etc/hbone/token")
        #expect(c.caAddress == .init(host: "ca.example", port: 15012))
        #expect(c.xdsHeaders == [.init(name: "x-tenant", value: "blue")])
        #expect(c.caHeaders == [.init(name: "x-ca", value: "one")])
        #expect(c.secretTTL == .seconds(43_200))
        #expect(c.nodeID == "ztunnel~10.0.0.5~hbone-abc.istio-system~istio-system.svc.cluster.local")
        #expect(c.nodeMetadata(node: "east") == ["NAME": "hbone-abc", "NAMESPACE": "istio-system", "INSTANCE_IPS": "10.0.0.5",
                                                 "NODE_NAME": "east", "CLUSTER_ID": "east"])
    }

    @Test func theEnvironmentWinsOverTheFile() throws {
        let env = ["XDS_ADDRESS": "https://10.96.0.10:15012", "CA_ADDRESS": "https://[fd00::1]:15012", "CLUSTER_ID": "west",
                   "NODE_NAME": "node-7", "POD_NAME": "hbone-x", "POD_NAMESPACE": "istio-system", "INSTANCE_IP": "10.1.0.3",
                   "SECRET_TTL": "1h", "AUTH_TOKEN": "/var/run/t", "XDS_HEADER_X_TENANT": "green", "CA_HEADER_X_CA": "two",
                   "ALT_XDS_HOSTNAME": "istiod.alt"]
        let c = try Self.config("  xds: {address: \"https://file:1\", clusterId: east, headers: {x_tenant: blue}}", environment: env)
        #expect(c.xdsAddress == .init(host: "10.96.0.10", port: 15012))
        #expect(c.caAddress.description == "https://[fd00::1]:15012")
        #expect(c.clusterID == "west")
        #expect(c.xdsHeaders == [.init(name: "x_tenant", value: "green")])
        #expect(c.caHeaders == [.init(name: "x_ca", value: "two")])
        #expect(c.secretTTL == .seconds(3600))
        #expect(c.nodeMetadata(node: "east")["NODE_NAME"] == "node-7")
        #expect(c.altXDSHostname == "istiod.alt")
        #expect(c.altCAHostname == nil)
        // The CA's own alternative name, from the file or ztunnel's ALT_CA_HOSTNAME (which wins).
        #expect(try Self.config("  ca: {altHostname: ca.file}").altCAHostname == "ca.file")
        #expect(try Self.config("  ca: {altHostname: ca.file}", environment: ["ALT_CA_HOSTNAME": "ca.env"]).altCAHostname == "ca.env")
        // The cluster as Istio's chart names it (ISTIO_META_CLUSTER_ID) comes before CLUSTER_ID.
        var chart = env
        chart["ISTIO_META_CLUSTER_ID"] = "cluster-2"
        let named = try Self.config("  xds: {address: \"https://file:1\", clusterId: east}", environment: chart)
        #expect(named.clusterID == "cluster-2" && named.nodeMetadata(node: "east")["CLUSTER_ID"] == "cluster-2")
        // Every ISTIO_META_ variable goes to istiod in the node metadata, as ztunnel's proxy metadata.
        chart["ISTIO_META_ENABLE_HBONE"] = "true"
        chart["ISTIO_META_"] = "no key"
        let metadata = try Self.config("", environment: chart).nodeMetadata(node: "east")
        #expect(metadata["ENABLE_HBONE"] == "true" && metadata["CLUSTER_ID"] == "cluster-2" && metadata[""] == nil)
        #expect(metadata["NODE_NAME"] == "node-7" && metadata["NAME"] == "hbone-x")
    }

    @Test(arguments: [
        ("XDS_ADDRESS", "http://istiod:15010", "only https://"),
        ("XDS_ADDRESS", "https://istiod", "missing :port"),
        ("CA_ADDRESS", "https://istiod:0", "bad port"),
        ("CA_ADDRESS", "https://ist iod:15012", "bad host"),
        ("INSTANCE_IP", "not-an-ip", "not an IP address"),
        ("SECRET_TTL", "1s", "at least 2s"),
        ("XDS_HEADER_AUTHORIZATION", "Bearer x", "not a header name"),
    ])
    func badEnvironmentValuesNameTheVariable(name: String, value: String, reason: String) {
        do throws(ConfigError) {
            _ = try Self.config(environment: [name: value])
            Issue.record("\(name)=\(value) was accepted")
        } catch {
            #expect(error.path == "environment \(name)")
            #expect(error.reason.contains(reason), "\(error)")
            #expect(error.file == "/etc/hbone/config.yaml")
        }
    }

    @Test func badFileValuesNameTheLine() {
        do throws(ConfigError) {
            _ = try Self.config("  xds: {address: \"grpc://istiod:15012\"}")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 5 && error.reason.contains("only https://"), "\(error)")
        }
        #expect(throws: ConfigError.self) { _ = try Self.config("  xds: {adress: \"https://istiod:15012\"}") }
        #expect(throws: ConfigError.self) { _ = try Self.config("  ca: {headers: {te: trailers}}") }
    }

    @Test func streamLimitsAndTheirFloors() throws {
        let c = try Self.config("  xds: {connectTimeout: 2s, keepaliveInterval: 45s, firstResponseTimeout: 1s, maxMessageBytes: 1048576}")
        #expect(c.connectTimeout == .seconds(2) && c.keepaliveInterval == .seconds(45))
        #expect(c.firstResponseTimeout == .seconds(1) && c.maxMessageBytes == 1_048_576)
        let defaults = try Self.config()
        #expect(defaults.connectTimeout == .seconds(5) && defaults.keepaliveInterval == .seconds(30))
        #expect(defaults.maxMessageBytes == 200 * 1024 * 1024)
        // grpc-go servers drop clients that ping more often than every 30 s.
        #expect(throws: ConfigError.self) { _ = try Self.config("  xds: {keepaliveInterval: 10s}") }
        #expect(throws: ConfigError.self) { _ = try Self.config("  xds: {maxMessageBytes: 10}") }
    }

    static func settings(_ certificates: String, environment: [String: String] = [:]) throws(ConfigError) -> Settings {
        let yaml = """
        hbone:
          node: east
          certificates: \(certificates)
        """
        return try ProxyConfig.parse(yaml: yaml, file: "/etc/hbone/config.yaml", environment: environment).settings
    }

    @Test func theIstioCAWithoutARootFileTrustsTheCAsRoots() throws {
        let s = try Self.settings("{istioCA: true}")
        #expect(s.certificates == .istioCA)
        #expect(s.rootCertificates.isEmpty)
        #expect(throws: ConfigError.self) { _ = try Self.settings("{istioCA: true, directory: /certs}") }
        #expect(throws: ConfigError.self) { _ = try Self.settings("{istioCA: true, ttl: 1h}") }
        #expect(throws: ConfigError.self) { _ = try Self.settings("{directory: /certs}") }   // a root file is needed there
    }

    @Test func nodeNameNamesTheLocalNode() throws {
        #expect(try Self.settings("{istioCA: true}", environment: ["NODE_NAME": "worker-3"]).node == "worker-3")
        #expect(try Self.settings("{istioCA: true}").node == "east")
    }

    @Test func drainFollowsThePodsGracePeriodUnlessTheFileSetsIt() throws {
        #expect(try Self.settings("{istioCA: true}", environment: ["TERMINATION_GRACE_PERIOD_SECONDS": "30"]).timeouts.drain == .seconds(25))
        // ztunnel's rule for short periods: one second less, never under one second.
        for (period, drain) in [(10, 9), (3, 2), (1, 1), (0, 1)] {
            #expect(try Self.settings("{istioCA: true}", environment: ["TERMINATION_GRACE_PERIOD_SECONDS": "\(period)"]).timeouts.drain == .seconds(drain))
        }
        #expect(try Self.settings("{istioCA: true}").timeouts.drain == .seconds(5))
        let yaml = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  timeouts: {drain: 7s}\n"
        let explicit = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: ["TERMINATION_GRACE_PERIOD_SECONDS": "30"])
        #expect(explicit.settings.timeouts.drain == .seconds(7))
        #expect(throws: ConfigError.self) { _ = try Self.settings("{istioCA: true}", environment: ["TERMINATION_GRACE_PERIOD_SECONDS": "soon"]) }
        // ztunnel's explicit deadline wins over both.
        let deadline = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: ["TERMINATION_GRACE_PERIOD_SECONDS": "30",
                                                                                         "CONNECTION_TERMINATION_DEADLINE": "12s"])
        #expect(deadline.settings.timeouts.drain == .seconds(12))
    }

    /// Each variable set to its bad value alone fails the load, naming the variable.
    static func expectRefused(_ yaml: String, _ cases: [(name: String, value: String)]) {
        for (name, value) in cases {
            do {
                _ = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: [name: value])
                Issue.record("accepted \(name)=\(value)")
            } catch {
                #expect(error.description.contains("environment \(name)"), "\(error)")
            }
        }
    }

    /// TCP keepalive: ztunnel's defaults, `hbone.tcpKeepalive`, and its variables over the file.
    @Test func keepaliveFromTheFileAndTheEnvironment() throws {
        #expect(try Self.settings("{istioCA: true}").tcpKeepalive == TCPKeepalive())
        let yaml = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  tcpKeepalive: {time: 1m, interval: 15s, probes: 5, userTimeout: true}\n"
        let file = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: [:]).settings.tcpKeepalive
        #expect(file.time == .seconds(60) && file.interval == .seconds(15) && file.probes == 5 && file.userTimeout && file.enabled)
        let env = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: ["KEEPALIVE_TIME": "30s", "KEEPALIVE_INTERVAL": "5s",
                                                                                    "KEEPALIVE_RETRIES": "3", "USER_TIMEOUT_ENABLED": "false",
                                                                                    "KEEPALIVE_ENABLED": "false"]).settings.tcpKeepalive
        #expect(env.time == .seconds(30) && env.interval == .seconds(5) && env.probes == 3 && !env.userTimeout && !env.enabled)
        Self.expectRefused(yaml, [("KEEPALIVE_TIME", "500ms"), ("KEEPALIVE_INTERVAL", "x"), ("KEEPALIVE_RETRIES", "0"), ("KEEPALIVE_ENABLED", "on")])
    }

    /// IPv6 on unless the file or ztunnel's IPV6_ENABLED (which wins) says false.
    @Test func ipv6FromTheFileOrTheEnvironment() throws {
        #expect(try Self.settings("{istioCA: true}").ipv6Enabled)
        #expect(try !Self.settings("{istioCA: true}", environment: ["IPV6_ENABLED": "false"]).ipv6Enabled)
        let file = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  ipv6Enabled: false\n"
        #expect(try !ProxyConfig.parse(yaml: file, file: "/c.yaml", environment: [:]).settings.ipv6Enabled)
        #expect(try ProxyConfig.parse(yaml: file, file: "/c.yaml", environment: ["IPV6_ENABLED": "true"]).settings.ipv6Enabled)
    }

    /// ztunnel's pool and worker variables, over the file.
    @Test func poolAndWorkerVariables() throws {
        let yaml = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  workers: 2\n  pool: {maxStreamsPerConnection: 50, idleTimeout: 1m}\n"
        let file = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: [:]).settings
        #expect(file.workers == 2 && file.pool.maxStreamsPerConnection == 50 && file.pool.idleTimeout == .seconds(60))
        let env = try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: ["ZTUNNEL_WORKER_THREADS": "3", "POOL_MAX_STREAMS_PER_CONNECTION": "200",
                                                                                    "POOL_UNUSED_RELEASE_TIMEOUT": "10s"]).settings
        #expect(env.workers == 3 && env.pool.maxStreamsPerConnection == 200 && env.pool.idleTimeout == .seconds(10))
        #expect(ProxyConfig.workerThreads("50%", cpus: 8) == 4 && ProxyConfig.workerThreads("10%", cpus: 4) == 1 && ProxyConfig.workerThreads("100%", cpus: 6) == 6)
        for bad in ["300", "0%", "101%", "many", "-2"] { #expect(ProxyConfig.workerThreads(bad, cpus: 8) == nil, "\(bad)") }
        Self.expectRefused(yaml, [("ZTUNNEL_WORKER_THREADS", "x"), ("POOL_MAX_STREAMS_PER_CONNECTION", "0"), ("POOL_UNUSED_RELEASE_TIMEOUT", "soon"),
                                  ("CONNECTION_TERMINATION_DEADLINE", "-1s"), ("ZTUNNEL_RESOURCE_CPU_LIMIT", "two"),
                                  ("ZTUNNEL_RESOURCE_CPU_REQUEST", "-1"), ("ZTUNNEL_CPU_LIMIT", "lots")])
    }

    /// ZTUNNEL_WORKER_THREADS counts CPUs as ztunnel does: the CPU limit given (the chart's
    /// millicores too), else every CPU; 0 means one per CPU.
    @Test func workerThreadsCountTheCPUsOfTheLimit() throws {
        let yaml = "hbone:\n  node: east\n  certificates: {istioCA: true}\n"
        func workers(_ environment: [String: String]) throws -> Int? {
            try ProxyConfig.parse(yaml: yaml, file: "/c.yaml", environment: environment).settings.workers
        }
        #expect(try workers(["ZTUNNEL_WORKER_THREADS": "0", "ZTUNNEL_RESOURCE_CPU_LIMIT": "3"]) == 3)
        #expect(try workers(["ZTUNNEL_WORKER_THREADS": "50%", "ZTUNNEL_CPU_LIMIT": "4"]) == 2)
        #expect(try workers(["ZTUNNEL_WORKER_THREADS": "50%", "ZTUNNEL_RESOURCE_CPU_LIMIT": "1500m", "ZTUNNEL_CPU_LIMIT": "64"]) == 1)
        #expect(try workers(["ZTUNNEL_WORKER_THREADS": "0"]) == min(ProcessInfo.processInfo.activeProcessorCount, 256))
        #expect(try workers(["ZTUNNEL_RESOURCE_CPU_REQUEST": "250m"]) == nil, "a request alone leaves the default")
    }

    @Test func inPodModeFromTheFileOrTheEnvironment() throws {
        #expect(try Self.settings("{istioCA: true}").inPod == nil)
        #expect(try Self.settings("{istioCA: true}").packetMark == nil)
        let env = try Self.settings("{istioCA: true}", environment: ["INPOD_UDS": "/var/run/ztunnel/ztunnel.sock"])
        #expect(env.inPod?.uds == "/var/run/ztunnel/ztunnel.sock" && env.packetMark == 1337)
        let marked = try Self.settings("{istioCA: true}", environment: ["INPOD_UDS": "/s", "PACKET_MARK": "4242"])
        #expect(marked.packetMark == 4242)
    }

    /// Revocation lists: `hbone.crlPath` (relative to the file) or ztunnel's CRL_PATH, which wins.
    @Test func crlPathFromTheFileOrTheEnvironment() throws {
        #expect(try Self.settings("{istioCA: true}").crlPath == nil)
        let file = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  crlPath: crl/revoked.pem\n"
        #expect(try ProxyConfig.parse(yaml: file, file: "/etc/hbone/c.yaml", environment: [:]).settings.crlPath == "/etc/hbone/crl/revoked.pem")
        #expect(try ProxyConfig.parse(yaml: file, file: "/etc/hbone/c.yaml", environment: ["CRL_PATH": "/var/run/crl/crl.pem"]).settings.crlPath
                == "/var/run/crl/crl.pem")
        #expect(try Self.settings("{istioCA: true}", environment: ["CRL_PATH": "/c.pem"]).crlPath == "/c.pem")
    }

    /// Application tunnels go to the pod's loopback unless `inpod.localhostAppTunnel` or ztunnel's
    /// LOCALHOST_APP_TUNNEL (which wins) says false.
    @Test func localhostAppTunnelFromTheFileOrTheEnvironment() throws {
        let uds = ["INPOD_UDS": "/s"]
        #expect(try Self.settings("{istioCA: true}", environment: uds).inPod?.localhostAppTunnel == true)
        #expect(try Self.settings("{istioCA: true}", environment: uds.merging(["LOCALHOST_APP_TUNNEL": "false"]) { a, _ in a }).inPod?.localhostAppTunnel == false)
        let file = "hbone:\n  node: east\n  certificates: {istioCA: true}\n  inpod: {uds: /s, localhostAppTunnel: false}\n"
        #expect(try ProxyConfig.parse(yaml: file, file: "/c.yaml", environment: [:]).settings.inPod?.localhostAppTunnel == false)
        #expect(try ProxyConfig.parse(yaml: file, file: "/c.yaml", environment: ["LOCALHOST_APP_TUNNEL": "TRUE"]).settings.inPod?.localhostAppTunnel == true)
        do {
            _ = try Self.settings("{istioCA: true}", environment: ["LOCALHOST_APP_TUNNEL": "yes"])
            Issue.record("accepted yes")
        } catch {
            #expect(error.description.contains("environment LOCALHOST_APP_TUNNEL: \"yes\" is not true or false"), "\(error)")
        }
    }
}
