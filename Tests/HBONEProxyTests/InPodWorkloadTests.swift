import Glibc
import Testing
import HBONECore
import HBONEConfig
import HBONEEventLoop
@testable import HBONEProxy

/// Which addresses a handed-over pod's listeners bind (ztunnel's IPV6_ENABLED).
@Suite struct InPodWorkloadTests {
    func pod(_ ips: [String], environment: [String: String] = [:]) throws -> (InPodWorkload, Settings) {
        let yaml = """
            workloads:
            - {name: dual-0, namespace: apps, workloadIps: [\(ips.map { "\"\($0)\"" }.joined(separator: ", "))], protocol: HBONE, node: east}
            hbone:
              node: east
              rootCertificates: /unused
              certificates: {directory: /unused}
            """
        let config = try ProxyConfig.parse(yaml: yaml, file: "t.yaml", environment: environment)
        let netns = NetworkNamespace(takingOwnership: open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), owner: "test")
        return (InPodWorkload(uid: "uid-1", workload: config.workloads[0], netns: netns), config.settings)
    }

    @Test func aDualStackPodListensOnIPv6UnlessIPv6IsOff() throws {
        let (dual, on) = try pod(["10.0.0.5", "fd00::5"])
        #expect(dual.listenerHosts(on) == [.v4(0), .v6(0, 0)])
        let (same, off) = try pod(["10.0.0.5", "fd00::5"], environment: ["IPV6_ENABLED": "false"])
        #expect(!off.ipv6Enabled)
        #expect(same.listenerHosts(off) == [.v4(0)])
        #expect(!same.servesIPv6(off))
        // An IPv4-only pod never takes IPv6 sockets.
        let (v4, _) = try pod(["10.0.0.6"])
        #expect(v4.listenerHosts(on) == [.v4(0)])
    }
}
