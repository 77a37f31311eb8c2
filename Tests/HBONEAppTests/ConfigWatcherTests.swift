import Foundation
import Testing
import HBONEConfig
@testable import HBONEApp

/// The watcher's fingerprint changes exactly when something the proxy loads changes on disk,
/// including a Kubernetes-style secret update (the `..data` symlink swapped, file names unchanged).
@Suite struct ConfigWatcherTests {
    @Test func changesWhenAWatchedFileOrTheSecretLinkChanges() throws {
        let dir = NSTemporaryDirectory() + "hbone-watch-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let fm = FileManager.default
        // certs/payments/ledger/{cert-chain,key}.pem -> ..data/… as a Secret volume lays them out.
        let sa = dir + "/certs/payments/ledger"
        try fm.createDirectory(atPath: sa + "/v1", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: sa + "/v2", withIntermediateDirectories: true)
        for v in ["v1", "v2"] {
            try "chain \(v)".write(toFile: "\(sa)/\(v)/cert-chain.pem", atomically: true, encoding: .utf8)
            try "key \(v)".write(toFile: "\(sa)/\(v)/key.pem", atomically: true, encoding: .utf8)
        }
        try fm.createSymbolicLink(atPath: sa + "/..data", withDestinationPath: "v1")
        try fm.createSymbolicLink(atPath: sa + "/cert-chain.pem", withDestinationPath: "..data/cert-chain.pem")
        try fm.createSymbolicLink(atPath: sa + "/key.pem", withDestinationPath: "..data/key.pem")
        try fm.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        try "roots".write(toFile: dir + "/root.pem", atomically: true, encoding: .utf8)
        let yaml = """
        workloads:
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.0.0.20"], protocol: HBONE, node: west}
        hbone:
          node: west
          rootCertificates: \(dir)/root.pem
          certificates: {directory: \(dir)/certs}
          authorizationPolicies: ["\(dir)/policies"]
        """
        try yaml.write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        let config = try ProxyConfig.load(file: dir + "/node.yaml")
        func print() -> [String] {
            ConfigWatcher.fingerprint(configPath: dir + "/node.yaml", settings: config.settings, workloads: config.localWorkloads)
        }
        let first = print()
        #expect(print() == first, "nothing changed")
        // The secret's link moves to v2: same names, new files.
        try fm.removeItem(atPath: sa + "/..data")
        try fm.createSymbolicLink(atPath: sa + "/..data", withDestinationPath: "v2")
        let second = print()
        #expect(second != first)
        // A new policy file in a watched directory.
        try "kind: List\nitems: []\n".write(toFile: dir + "/policies/p.yaml", atomically: true, encoding: .utf8)
        let third = print()
        #expect(third != second)
        // The bundle goes missing: that is a change too (the reload then reports it).
        try fm.removeItem(atPath: dir + "/root.pem")
        #expect(print() != third)
        #expect(print().contains("\(dir)/root.pem|missing"))
    }
}
