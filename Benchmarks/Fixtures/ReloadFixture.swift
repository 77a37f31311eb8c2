import Foundation
import HBONEConfig
import HBONEIdentity
import HBONETLS
import HBONEProxy

/// A node's files as a reload reads them: a root file and `identities` SVIDs (leaf + intermediate)
/// in the certificate directory's layout, in a temporary directory, with one local workload each.
public final class ReloadFixture: @unchecked Sendable {
    public let directory = NSTemporaryDirectory() + "hbone-reload-bench-\(getpid())"
    public let config: ProxyConfig

    public init(identities: Int) throws {
        let (root, ca, caKey) = try InMemoryPKI.authorities()
        let fm = FileManager.default
        try? fm.removeItem(atPath: directory)
        var yaml = "workloads:\n"
        for i in 0..<identities {
            let id = try SPIFFEID(parsing: "spiffe://cluster.local/ns/ns-\(i)/sa/sa-\(i)")
            let (leaf, key) = try CertificateAuthority.issueSVID(id, ca: ca, caKey: caKey, lifetime: .seconds(86400))
            let dir = "\(directory)/certs/ns-\(i)/sa-\(i)"
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try (leaf.pem + ca.pem).write(toFile: dir + "/cert-chain.pem", atomically: true, encoding: .utf8)
            try key.pkcs8PEM.write(toFile: dir + "/key.pem", atomically: true, encoding: .utf8)
            yaml += "- {name: w-\(i), namespace: ns-\(i), serviceAccount: sa-\(i), workloadIps: [\"10.0.\(i / 250).\(i % 250 + 1)\"], node: east}\n"
        }
        try root.pem.write(toFile: directory + "/root-cert.pem", atomically: true, encoding: .utf8)
        yaml += "hbone:\n  node: east\n  rootCertificates: \(directory)/root-cert.pem\n  certificates: {directory: \(directory)/certs}\n"
        config = try ProxyConfig.parse(yaml: yaml, file: "reload.yaml", environment: [:])
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// One reload: files read and a snapshot built, as after an xDS push or a file event.
    public func load(previous: ProxyState?) throws -> ProxyState {
        try ProxyState.load(config: config, version: (previous?.version ?? 0) + 1, previous: previous).state
    }
}
