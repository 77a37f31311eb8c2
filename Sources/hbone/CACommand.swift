import ArgumentParser
import Foundation
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONETLS
#if canImport(Glibc)
import Glibc
#endif

/// `hbone ca`: the shared root, per-cluster intermediates (`cacerts`), workload SVIDs, the Secret.
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ca", abstract: "Create the mesh PKI: root, per-cluster intermediates, SVIDs.",
                                                    subcommands: [Root.self, Intermediate.self, Issue.self, KubernetesSecret.self])

    struct Root: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the shared root: root-cert.pem, root-key.pem.")
        @Option(help: "Output directory.") var out: String
        @Option(help: "ec-p256, ec-p384, rsa-2048 or rsa-4096.") var keyType = "ec-p256"
        @Option(help: "Validity in days.") var days = 3650
        @Option(help: "Organization in the subject.") var org = "hbone"
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            let type = try keyTypeArgument(keyType)
            try prepare(out, ["root-cert.pem", "root-key.pem"], force: force)
            let key = try CertificateAuthority.generateKey(type)
            let cert = try CertificateAuthority.sign(
                subject: .init(organization: org, commonName: "\(org) mesh root CA"), publicKeyOf: key, issuer: nil, signer: key,
                validity: Double(days) * 86400,
                extensions: CertificateAuthority.rootExtensions)
            try write(cert.pem, to: out + "/root-cert.pem", secret: false)
            try write(key.pkcs8PEM, to: out + "/root-key.pem", secret: true)
            print("root CA written to \(out): serial \(cert.serialHex), expires \(cert.notAfter)")
        }
    }

    struct Intermediate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a cluster's intermediate: the four cacerts files.")
        @Option(help: "Directory with root-cert.pem and root-key.pem.") var root: String
        @Option(help: "Cluster name (in the subject).") var cluster: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "Constrain the intermediate to SVIDs of this trust domain (URI name constraint).") var trustDomain: String?
        @Option(help: "ec-p256, ec-p384, rsa-2048 or rsa-4096.") var keyType = "ec-p256"
        @Option(help: "Validity in days.") var days = 1825
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            let type = try keyTypeArgument(keyType)
            let (rootCert, rootKey) = try loadCA(cert: root + "/root-cert.pem", key: root + "/root-key.pem")
            try prepare(out, ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"], force: force)
            var extensions = CertificateAuthority.intermediateExtensions
            if let td = trustDomain {
                do { _ = try SPIFFEID(trustDomain: td, namespace: "x", serviceAccount: "x") } catch {
                    throw ValidationError("--trust-domain \(td): \(error)")
                }
                extensions.append(("nameConstraints", "critical,permitted;URI:\(td)"))
            }
            let key = try CertificateAuthority.generateKey(type)
            let cert = try CertificateAuthority.sign(subject: .init(organization: "hbone", commonName: "\(cluster) intermediate CA"),
                                                     publicKeyOf: key, issuer: rootCert, signer: rootKey, validity: Double(days) * 86400, extensions: extensions)
            try write(cert.pem, to: out + "/ca-cert.pem", secret: false)
            try write(key.pkcs8PEM, to: out + "/ca-key.pem", secret: true)
            try write(rootCert.pem, to: out + "/root-cert.pem", secret: false)
            try write(cert.pem + rootCert.pem, to: out + "/cert-chain.pem", secret: false)
            print("cacerts for \(cluster) written to \(out): intermediate serial \(cert.serialHex), expires \(cert.notAfter)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a workload SVID: cert-chain.pem, key.pem, root-cert.pem.")
        @Option(help: "A cacerts directory (ca-cert.pem, ca-key.pem, root-cert.pem).") var ca: String
        @Option(help: "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>") var spiffeId: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "Lifetime, e.g. 24h.") var ttl = "24h"
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            let id: SPIFFEID
            do { id = try SPIFFEID(parsing: spiffeId) } catch { throw ValidationError("--spiffe-id: \(error)") }
            guard let lifetime = parseDuration(ttl), lifetime > .zero else { throw ValidationError("--ttl \(ttl) is not a duration") }
            let (caCert, caKey) = try loadCA(cert: ca + "/ca-cert.pem", key: ca + "/ca-key.pem")
            let rootPEM = try String(contentsOfFile: ca + "/root-cert.pem", encoding: .utf8)
            try prepare(out, ["cert-chain.pem", "key.pem", "root-cert.pem"], force: force)
            let leaf = try CertificateAuthority.issueSVID(id, ca: caCert, caKey: caKey, lifetime: lifetime)
            try write(leaf.certificate.pem + caCert.pem, to: out + "/cert-chain.pem", secret: false)
            try write(leaf.key.pkcs8PEM, to: out + "/key.pem", secret: true)
            try write(rootPEM, to: out + "/root-cert.pem", secret: false)
            print("SVID \(id) written to \(out): serial \(leaf.certificate.serialHex), expires \(leaf.certificate.notAfter)")
        }
    }

    struct KubernetesSecret: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "kubernetes-secret", abstract: "Print the cacerts Secret YAML for a cluster.")
        @Option(help: "A cacerts directory.") var ca: String
        @Option(help: "Namespace of the Secret.") var namespace = "istio-system"

        func run() throws {
            var yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\n  namespace: \(namespace)\ntype: Opaque\ndata:\n"
            for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] {
                guard let data = FileManager.default.contents(atPath: ca + "/" + f) else { throw ValidationError("cannot read \(ca)/\(f)") }
                yaml += "  \(f): \(data.base64EncodedString())\n"
            }
            print(yaml, terminator: "")
        }
    }
}

func keyTypeArgument(_ s: String) throws -> KeyType {
    guard let t = KeyType(rawValue: s) else { throw ValidationError("--key-type must be one of \(KeyType.allCases.map(\.rawValue).joined(separator: ", "))") }
    return t
}

func loadCA(cert: String, key: String) throws -> (Certificate, PrivateKey) {
    guard let certData = FileManager.default.contents(atPath: cert) else { throw ValidationError("cannot read \(cert)") }
    guard let keyData = FileManager.default.contents(atPath: key) else { throw ValidationError("cannot read \(key)") }
    let c = try Certificate.parsePEMChain([UInt8](certData))[0]
    let k = try PrivateKey.parsePEM([UInt8](keyData))
    guard k.matches(c) else { throw ValidationError("\(key) does not belong to \(cert)") }
    guard c.isCA else { throw ValidationError("\(cert) is not a CA certificate") }
    return (c, k)
}

/// Creates `dir`; refuses to overwrite any of `files` unless `force`.
func prepare(_ dir: String, _ files: [String], force: Bool) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    if !force {
        let existing = files.filter { FileManager.default.fileExists(atPath: dir + "/" + $0) }
        if !existing.isEmpty { throw ValidationError("\(dir) already holds \(existing.joined(separator: ", ")); use --force to overwrite") }
    }
}

/// Writes a file; secrets are created 0600 before any byte is written.
func write(_ text: String, to path: String, secret: Bool) throws {
    let mode: mode_t = secret ? 0o600 : 0o644
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    _ = fchmod(fd, mode)
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
        offset += n
    }
}
