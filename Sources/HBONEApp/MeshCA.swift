import Foundation
import HBONEIdentity
import HBONETLS
#if canImport(Glibc)
import Glibc
#endif

/// `hbone ca`: the mesh PKI on disk in Istio's layouts — the shared root, a cluster's `cacerts`
/// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), workload SVIDs, the cacerts Secret.
/// Each call returns the line to print; keys are written 0600 before any byte of them.
public enum MeshCA {
    /// `subject`: `O=…,CN=…` (either may be left out); nil: `O=<organization>,CN=<organization> mesh root CA`.
    public static func createRoot(out: String, keyType: KeyType, days: Int, organization: String, subject: String? = nil, force: Bool) throws -> String {
        let name = try subject.map(parseSubject) ?? .init(organization: organization, commonName: "\(organization) mesh root CA")
        try prepare(out, ["root-cert.pem", "root-key.pem"], force: force)
        let key = try CertificateAuthority.generateKey(keyType)
        let cert = try CertificateAuthority.sign(
            subject: name, publicKeyOf: key, issuer: nil, signer: key,
            validity: Double(days) * 86400, extensions: CertificateAuthority.rootExtensions)
        try write(cert.pem, to: out + "/root-cert.pem", secret: false)
        try write(key.pkcs8PEM, to: out + "/root-key.pem", secret: true)
        return "root CA written to \(out): serial \(cert.serialHex), expires \(cert.notAfter)"
    }

    /// `trustDomain`: constrains the intermediate to that trust domain's SVIDs (URI name constraint).
    public static func createIntermediate(root: String, cluster: String, out: String, trustDomain: String?, keyType: KeyType,
                                          days: Int, force: Bool) throws -> String {
        let (rootCert, rootKey) = try loadCA(cert: root + "/root-cert.pem", key: root + "/root-key.pem")
        try prepare(out, ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"], force: force)
        var extensions = CertificateAuthority.intermediateExtensions
        if let td = trustDomain {
            do { _ = try SPIFFEID(trustDomain: td, namespace: "x", serviceAccount: "x") } catch {
                throw ToolError("--trust-domain \(td): \(error)")
            }
            extensions.append(("nameConstraints", "critical,permitted;URI:\(td)"))
        }
        let key = try CertificateAuthority.generateKey(keyType)
        let cert = try CertificateAuthority.sign(subject: .init(organization: "hbone", commonName: "\(cluster) intermediate CA"),
                                                 publicKeyOf: key, issuer: rootCert, signer: rootKey, validity: Double(days) * 86400, extensions: extensions)
        try write(cert.pem, to: out + "/ca-cert.pem", secret: false)
        try write(key.pkcs8PEM, to: out + "/ca-key.pem", secret: true)
        try write(rootCert.pem, to: out + "/root-cert.pem", secret: false)
        try write(cert.pem + rootCert.pem, to: out + "/cert-chain.pem", secret: false)
        return "cacerts for \(cluster) written to \(out): intermediate serial \(cert.serialHex), expires \(cert.notAfter)"
    }

    /// Refuses an identity the issuer's name constraints do not permit (the SVID would never verify),
    /// and caps the lifetime at the issuer's own expiry (saying so).
    public static func issue(ca: String, identity: SPIFFEID, lifetime: Duration, out: String, force: Bool) throws -> String {
        let (caCert, caKey) = try loadCA(cert: ca + "/ca-cert.pem", key: ca + "/ca-key.pem")
        let rootPEM: String
        do { rootPEM = try String(contentsOfFile: ca + "/root-cert.pem", encoding: .utf8) } catch { throw ToolError("cannot read \(ca)/root-cert.pem") }
        var note = ""
        var granted = lifetime
        let left = caCert.notAfter.timeIntervalSinceNow
        guard left > 60 else { throw ToolError("\(ca)/ca-cert.pem expires at \(caCert.notAfter): nothing valid can be issued from it") }
        if Double(lifetime.components.seconds) > left {
            granted = .seconds(Int64(left))
            note = " (lifetime capped at the issuer's expiry: asked \(lifetime), got \(granted))"
        }
        let leaf = try CertificateAuthority.issueSVID(identity, ca: caCert, caKey: caKey, lifetime: granted)
        // Verified before anything is written: name constraints, chain to the root.
        let chain = [leaf.certificate] + (try Certificate.parsePEMChain(Array(caChain(ca, caCert).utf8)))
        let roots = try Certificate.parsePEMChain(Array(rootPEM.utf8))
        // At a moment inside the leaf's validity: now, or its last second when issuing took longer
        // than a very short lifetime (a 1 s SVID on a slow machine was refused as expired).
        let checkAt = min(max(Date(), leaf.certificate.notBefore), leaf.certificate.notAfter)
        if let problem = try TrustBundle(roots: roots).verify(chain: chain, at: checkAt) {
            throw ToolError("\(identity) cannot be issued from \(ca): \(problem)")
        }
        try prepare(out, ["cert-chain.pem", "key.pem", "root-cert.pem"], force: force)
        try write(leaf.certificate.pem + caCert.pem, to: out + "/cert-chain.pem", secret: false)
        try write(leaf.key.pkcs8PEM, to: out + "/key.pem", secret: true)
        try write(rootPEM, to: out + "/root-cert.pem", secret: false)
        return "SVID \(identity) written to \(out): serial \(leaf.certificate.serialHex), expires \(leaf.certificate.notAfter)\(note)"
    }

    /// The issuer and any intermediates above it (cert-chain.pem without the root), else the issuer alone.
    static func caChain(_ ca: String, _ caCert: Certificate) -> String {
        guard let text = try? String(contentsOfFile: ca + "/cert-chain.pem", encoding: .utf8),
              let certs = try? Certificate.parsePEMChain(Array(text.utf8)), certs.first?.der == caCert.der else { return caCert.pem }
        return certs.filter { !$0.isSelfSigned }.map(\.pem).joined()
    }

    /// `O=…,CN=…` for `ca root --subject`.
    static func parseSubject(_ text: String) throws(ToolError) -> CertificateAuthority.Subject {
        var subject = CertificateAuthority.Subject()
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[1].isEmpty else { throw ToolError("--subject: \"\(part)\" is not KEY=VALUE") }
            switch kv[0].uppercased() {
            case "O": subject.organization = kv[1]
            case "CN": subject.commonName = kv[1]
            default: throw ToolError("--subject: only O and CN are supported, not \(kv[0])")
            }
        }
        guard subject.organization != nil || subject.commonName != nil else { throw ToolError("--subject is empty") }
        return subject
    }

    /// The `cacerts` Secret istiod reads, for a cluster's cacerts directory.
    public static func kubernetesSecret(ca: String, namespace: String) throws(ToolError) -> String {
        var yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\n  namespace: \(namespace)\ntype: Opaque\ndata:\n"
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] {
            guard let data = FileManager.default.contents(atPath: ca + "/" + f) else { throw ToolError("cannot read \(ca)/\(f)") }
            yaml += "  \(f): \(data.base64EncodedString())\n"
        }
        return yaml
    }

    static func loadCA(cert: String, key: String) throws -> (Certificate, PrivateKey) {
        guard let certData = FileManager.default.contents(atPath: cert) else { throw ToolError("cannot read \(cert)") }
        guard let keyData = FileManager.default.contents(atPath: key) else { throw ToolError("cannot read \(key)") }
        let c = try Certificate.parsePEMChain([UInt8](certData))[0]
        let k = try PrivateKey.parsePEM([UInt8](keyData))
        guard k.matches(c) else { throw ToolError("\(key) does not belong to \(cert)") }
        guard c.isCA else { throw ToolError("\(cert) is not a CA certificate") }
        return (c, k)
    }

    /// Creates `dir`; refuses to overwrite any of `files` unless `force`.
    static func prepare(_ dir: String, _ files: [String], force: Bool) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if !force {
            let existing = files.filter { FileManager.default.fileExists(atPath: dir + "/" + $0) }
            if !existing.isEmpty { throw ToolError("\(dir) already holds \(existing.joined(separator: ", ")); use --force to overwrite") }
        }
    }

    /// Writes a file; secrets are created 0600 before any byte is written.
    static func write(_ text: String, to path: String, secret: Bool) throws(ToolError) {
        let mode: mode_t = secret ? 0o600 : 0o644
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ToolError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, mode)
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ToolError("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }
}
