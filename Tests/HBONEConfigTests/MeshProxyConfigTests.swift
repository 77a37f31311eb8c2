import Foundation
import Testing
import HBONECore
@testable import HBONEConfig

/// Istio's ProxyConfig (the mesh config's `defaultConfig`, then `PROXY_CONFIG`) as ztunnel reads
/// it: five fields, each standing in for a variable that wins when set. Before, both were ignored.
@Suite struct MeshProxyConfigTests {
    static let yaml = """
    hbone:
      node: east
      rootCertificates: /r.pem
      certificates: {directory: /certs}
    """

    @Test func proxyConfigStandsInForTheVariablesItCovers() throws {
        let pc = """
        {"discoveryAddress": "istiod.istio-system.svc:15012", "proxyAdminPort": 16000, "statsPort": 16020, "concurrency": 3,
         "holdApplicationUntilProxyStarts": true, "tracing": {"zipkin": {"address": "z:9411"}},
         "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "false", "FOO": "bar", "CLUSTER_ID": "from-proxy-config"}}
        """
        let c = try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml", environment: ["PROXY_CONFIG": pc, "INPOD_UDS": "/run/z.sock"])
        #expect(c.settings.controlPlane.xdsAddress?.description == "https://istiod.istio-system.svc:15012")
        #expect(c.settings.listen.admin == SocketAddress("127.0.0.1:16000") && c.settings.listen.metrics == SocketAddress("0.0.0.0:16020"))
        #expect(c.settings.workers == 3)
        // DNS_CAPTURE off turns off the DNS proxy in-pod mode would run; the rest goes to istiod.
        #expect(c.settings.inPod != nil && !c.settings.dnsEnabled)
        let metadata = c.settings.controlPlane.nodeMetadata(node: "east")
        #expect(metadata["FOO"] == "bar" && metadata["CLUSTER_ID"] == "from-proxy-config" && c.settings.controlPlane.clusterID == "from-proxy-config")
        // Variables set in the environment win.
        let env = ["PROXY_CONFIG": pc, "XDS_ADDRESS": "https://other:15012", "ZTUNNEL_WORKER_THREADS": "2", "ISTIO_META_FOO": "baz"]
        let over = try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml", environment: env)
        #expect(over.settings.controlPlane.xdsAddress?.host == "other" && over.settings.workers == 2)
        #expect(over.settings.controlPlane.nodeMetadata(node: "east")["FOO"] == "baz")
        // YAML as well as JSON; empty is nothing.
        #expect(try MeshProxyConfig.parse("concurrency: 0\nproxyMetadata: {A: b}\n", file: "x", inMeshConfig: false).concurrency == 0)
        #expect(try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml", environment: ["PROXY_CONFIG": " "]).settings.listen.admin == SocketAddress("127.0.0.1:15000"))
    }

    @Test func theMeshConfigsDefaultsComeFirst() throws {
        let dir = NSTemporaryDirectory() + "hbone-meshconfig-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mesh = dir + "/mesh"
        try """
        accessLogFile: /dev/stdout
        defaultConfig:
          discoveryAddress: istiod.istio-system.svc:15012
          statsPort: 15090
          proxyMetadata:
            ISTIO_META_DNS_AUTO_ALLOCATE: "true"
            A: mesh
        trustDomain: cluster.local
        """.write(toFile: mesh, atomically: true, encoding: .utf8)
        let pc = try MeshProxyConfig.load(environment: ["PROXY_CONFIG": "{\"proxyMetadata\": {\"A\": \"env\"}, \"statsPort\": 15091}"], meshConfigPath: mesh)
        #expect(pc.discoveryAddress == "istiod.istio-system.svc:15012" && pc.statsPort == 15091)
        #expect(pc.proxyMetadata == ["DNS_AUTO_ALLOCATE": "true", "A": "env"])
        // No file, no variable: nothing.
        #expect(try MeshProxyConfig.load(environment: [:], meshConfigPath: dir + "/none") == MeshProxyConfig())
        try "meshMTLS: {}\n".write(toFile: mesh, atomically: true, encoding: .utf8)
        #expect(try MeshProxyConfig.load(environment: [:], meshConfigPath: mesh) == MeshProxyConfig())
    }

    @Test(arguments: [
        ("{\"proxyAdminPort\": 70000}", "environment PROXY_CONFIG:1: proxyAdminPort:"),
        ("{\"concurrency\": -1}", "environment PROXY_CONFIG:1: concurrency: must be in 0...256"),
        ("[1, 2]", "environment PROXY_CONFIG:1: expected a mapping"),
        ("{\"proxyMetadata\": {\"A\": [1]}}", "environment PROXY_CONFIG:1: proxyMetadata.A: expected a string"),
        ("{unclosed", "environment PROXY_CONFIG:"),
    ])
    func aBadProxyConfigStopsStartUpSayingWhere(text: String, want: String) {
        do {
            _ = try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml", environment: ["PROXY_CONFIG": text])
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(want), "\(error)")
        }
    }

    /// ztunnel's ISTIO_METAJSON_*: JSON values in the node metadata. Before, they were ignored.
    @Test func jsonMetadataIsCheckedAndKept() throws {
        let c = try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml",
                                      environment: ["ISTIO_METAJSON_LABELS": "{\"app\": \"ztunnel\", \"tier\": 1}", "ISTIO_METAJSON_N": "7"])
        #expect(c.settings.controlPlane.proxyMetadataJSON == ["LABELS": "{\"app\": \"ztunnel\", \"tier\": 1}", "N": "7"])
        do {
            _ = try ProxyConfig.parse(yaml: Self.yaml, file: "c.yaml", environment: ["ISTIO_METAJSON_LABELS": "{app: x}"])
            Issue.record("accepted JSON that is not")
        } catch {
            #expect(error.description.contains("environment ISTIO_METAJSON_LABELS") && error.description.contains("is not JSON"), "\(error)")
        }
    }
}
