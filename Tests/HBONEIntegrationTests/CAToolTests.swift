import Foundation
import Testing
import HBONETestSupport

/// `hbone ca` and `hbone check`, run as a user would, checked with the openssl CLI and real proxies.
@Suite(.serialized) struct CAToolTests {
    let hbone = hboneBinary

    /// Runs a command; returns its exit status and standard output.
    func exec(_ program: String, _ args: [String]) throws -> (Int32, String) { try runProgram(program, args) }

    func ca(_ args: [String]) throws -> Int32 { try exec(hbone, ["ca"] + args).0 }

    func freshDir(_ name: String) throws -> String {
        let d = NSTemporaryDirectory() + "hbone-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: d)
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func rootIntermediateAndSVIDVerifyWithOpenSSL() throws {
        let d = try freshDir("ca")
        #expect(try ca(["root", "--out", d + "/root", "--key-type", "rsa-2048"]) == 0)
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "east", "--out", d + "/east", "--trust-domain", "cluster.local"]) == 0)
        #expect(try ca(["issue", "--ca", d + "/east", "--spiffe-id", "spiffe://cluster.local/ns/payments/sa/checkout", "--out", d + "/svid", "--ttl", "2h"]) == 0)
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] { #expect(FileManager.default.fileExists(atPath: d + "/east/" + f)) }
        let (rc, out) = try exec("/usr/bin/openssl", ["verify", "-CAfile", d + "/root/root-cert.pem", "-untrusted", d + "/east/ca-cert.pem", d + "/svid/cert-chain.pem"])
        #expect(rc == 0, "\(out)")
        #expect(try exec("/usr/bin/openssl", ["verify", "-CAfile", d + "/root/root-cert.pem", d + "/east/ca-cert.pem"]).0 == 0)
        let text = try exec("/usr/bin/openssl", ["x509", "-in", d + "/east/ca-cert.pem", "-noout", "-text"]).1
        #expect(text.contains("CA:TRUE, pathlen:0"))
        #expect(text.contains("Certificate Sign, CRL Sign"))
        #expect(text.contains("Permitted:") && text.contains("URI:cluster.local"))
        let leaf = try exec("/usr/bin/openssl", ["x509", "-in", d + "/svid/cert-chain.pem", "-noout", "-text"]).1
        #expect(leaf.contains("CA:FALSE"))
        #expect(leaf.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        #expect(leaf.contains("URI:spiffe://cluster.local/ns/payments/sa/checkout"))
        #expect(leaf.contains("ASN1 OID: prime256v1"))
        #expect(try exec("/usr/bin/openssl", ["pkey", "-in", d + "/svid/key.pem", "-noout"]).0 == 0)
        let keyHeader = try String(contentsOfFile: d + "/svid/key.pem", encoding: .utf8)
        #expect(keyHeader.hasPrefix("-----BEGIN PRIVATE KEY-----"))       // PKCS#8
        for key in [d + "/root/root-key.pem", d + "/east/ca-key.pem", d + "/svid/key.pem"] {
            let mode = (try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600, "\(key) is \(String(mode, radix: 8))")
        }
        // No silent overwrite; --force overwrites.
        // A runtime failure is exit 1 and one line; a bad argument is a usage error, 64.
        #expect(try ca(["root", "--out", d + "/root"]) == 1)
        let (_, refusal) = try runProgram(hbone, ["ca", "root", "--out", d + "/root"], includeErrors: true)
        #expect(refusal.contains("hbone: ") && refusal.contains("use --force to overwrite") && !refusal.contains("USAGE"), "\(refusal)")
        #expect(try ca(["root", "--out", d + "/root", "--force"]) == 0)
        // Bad input is refused with a clear error, not a crash.
        #expect(try ca(["issue", "--ca", d + "/east", "--spiffe-id", "spiffe://Cluster.Local/ns/a/sa/b", "--out", d + "/bad"]) == 64)
        #expect(try ca(["root", "--out", d + "/r2", "--key-type", "dsa"]) == 64)
        #expect(try ca(["issue", "--ca", d + "/missing", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b", "--out", d + "/bad"]) == 1)
    }

    @Test func kubernetesSecretCarriesTheFourFiles() throws {
        let d = try freshDir("secret")
        #expect(try ca(["root", "--out", d + "/root"]) == 0)
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "west", "--out", d + "/west"]) == 0)
        let (rc, yaml) = try exec(hbone, ["ca", "kubernetes-secret", "--ca", d + "/west", "--namespace", "istio-system"])
        #expect(rc == 0)
        #expect(yaml.contains("kind: Secret") && yaml.contains("name: cacerts") && yaml.contains("namespace: istio-system"))
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] {
            let line = yaml.split(separator: "\n").first { $0.hasPrefix("  \(f): ") }
            let decoded = line.flatMap { Data(base64Encoded: String($0.dropFirst(f.count + 4))) }
            #expect(decoded == FileManager.default.contents(atPath: d + "/west/" + f), "\(f)")
        }
    }

    /// Two clusters under one root tunnel both ways; a third with its own root is refused both
    /// ways until its root joins the bundles. PKI made by `hbone ca` alone.
    @Test func multiClusterTrustFollowsTheRoots() throws {
        let d = try freshDir("multi")
        #expect(try ca(["root", "--out", d + "/root"]) == 0)
        #expect(try ca(["root", "--out", d + "/root3", "--org", "third"]) == 0)
        for (cluster, root) in [("east", "root"), ("west", "root"), ("third", "root3")] {
            #expect(try ca(["intermediate", "--root", d + "/" + root, "--cluster", cluster, "--out", d + "/" + cluster]) == 0)
        }
        for (cluster, ns, sa) in [("east", "payments", "checkout"), ("west", "payments", "ledger"), ("third", "payments", "checkout"), ("third", "payments", "ledger")] {
            #expect(try ca(["issue", "--ca", d + "/" + cluster, "--spiffe-id", "spiffe://cluster.local/ns/\(ns)/sa/\(sa)", "--out", "\(d)/certs-\(cluster)/\(ns)/\(sa)"]) == 0)
        }
        #expect(try exec(hbone, ["check", "cacerts", d + "/east", d + "/west"]).0 == 0)
        #expect(try exec(hbone, ["check", "cacerts", d + "/east", d + "/third"]).0 == 1)
        let bundle = d + "/bundle.pem", eastBundle = d + "/east-bundle.pem"
        try FileManager.default.copyItem(atPath: d + "/root/root-cert.pem", toPath: bundle)
        try FileManager.default.copyItem(atPath: d + "/root/root-cert.pem", toPath: eastBundle)
        let both = try String(contentsOfFile: d + "/root/root-cert.pem", encoding: .utf8) + String(contentsOfFile: d + "/root3/root-cert.pem", encoding: .utf8)
        try both.write(toFile: d + "/both.pem", atomically: true, encoding: .utf8)
        var o = Mesh.Options()
        o.eastCertificates = d + "/certs-east"
        o.westCertificates = d + "/certs-west"
        o.eastBundle = eastBundle
        o.westBundle = bundle
        let mesh = try Mesh(net: 66, o)
        defer { mesh.stop() }
        // East ↔ west (separate intermediates, one root).
        #expect(try mesh.client("echo", ["--size", "1000"])["intact"] as? Bool == true)
        let check = try exec(hbone, ["check", "\(mesh.westIP):15008", "--cert-dir", d + "/certs-east/payments/checkout",
                                     "--ca", bundle, "--expect-id", "spiffe://cluster.local/ns/payments/sa/ledger", "--json"])
        #expect(check.0 == 0)
        let report = try JSONSerialization.jsonObject(with: Data(check.1.utf8)) as? [String: Any] ?? [:]
        #expect(report["verdict"] as? String == "trusted")
        #expect(report["alpn"] as? String == "h2")
        #expect((report["presentedChain"] as? [[String: Any]])?.count == 2)
        #expect(try exec(hbone, ["check", "\(mesh.westIP):15008", "--cert-dir", d + "/certs-east/payments/checkout",
                                 "--ca", bundle, "--expect-id", "spiffe://cluster.local/ns/payments/sa/audit"]).0 == 1)

        // Third cluster as a client of west: refused until west's bundle holds its root.
        func thirdClient() throws -> Int32 {
            try exec(hbone, ["check", "\(mesh.westIP):15008", "--cert-dir", d + "/certs-third/payments/checkout", "--ca", d + "/both.pem"]).0
        }
        #expect(try thirdClient() == 1)
        // Third cluster as a server for east (a Python HBONE server with the third cluster's ledger SVID).
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = [repositoryRoot + "/scripts/lib/h2_interop.py", "server", "--listen", "127.0.66.30:15008",
                            "--cert-dir", d + "/certs-third/payments/ledger", "--ca", d + "/both.pem", "--record", d + "/third.jsonl", "--ready", d + "/ready"]
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        #expect(waitForPort("127.0.66.30", 15008))
        // East reaches the third cluster's ledger only through HBONE with a trusted root: add it to the
        // config as a workload, then compare before/after adding the third root to east's bundle.
        let eastConfig = mesh.dir + "/east.yaml"
        var cfg = try String(contentsOfFile: eastConfig, encoding: .utf8)
        cfg = cfg.replacingOccurrences(of: "workloads:\n", with: "workloads:\n- uid: third//ledger-9\n  name: ledger-9\n  namespace: payments\n  serviceAccount: ledger\n  workloadIps: [\"127.0.66.30\"]\n  protocol: HBONE\n  node: third\n")
        try cfg.write(toFile: eastConfig, atomically: true, encoding: .utf8)
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("configuration applied") })
        #expect(try mesh.client("expect-fail", dest: "127.0.66.30:8080")["failed"] as? Bool == true)
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("unable to get local issuer certificate") || $0.contains("unknown_issuer") })

        // Add the third root to both bundles: both directions work.
        try both.write(toFile: bundle, atomically: true, encoding: .utf8)
        try both.write(toFile: eastBundle, atomically: true, encoding: .utf8)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("configuration applied") })
        #expect(mesh.waitForLog(mesh.eastLog) { $0.components(separatedBy: "configuration applied").count >= 3 })
        #expect(try thirdClient() == 0)
        #expect(try mesh.client("echo", dest: "127.0.66.30:8080", ["--size", "500"])["intact"] as? Bool == true)
    }

    @Test func guardrails() throws {
        let d = try freshDir("ca-guard")
        #expect(try ca(["root", "--out", d + "/root", "--subject", "O=Acme,CN=Acme Mesh Root"]) == 0)
        let (_, subject) = try exec("/usr/bin/openssl", ["x509", "-in", d + "/root/root-cert.pem", "-noout", "-subject"])
        #expect(subject.contains("O = Acme") && subject.contains("CN = Acme Mesh Root"), "\(subject)")
        #expect(try ca(["root", "--out", d + "/root2", "--subject", "OU=nope"]) == 1)
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "east", "--out", d + "/east", "--trust-domain", "cluster.local",
                        "--days", "1"]) == 0)
        // Outside the intermediate's URI name constraint: refused, nothing written.
        let (status, output) = try runProgram(hbone, ["ca", "issue", "--ca", d + "/east", "--spiffe-id", "spiffe://other.mesh/ns/a/sa/b",
                                                      "--out", d + "/foreign"], includeErrors: true)
        #expect(status == 1 && output.contains("cannot be issued"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: d + "/foreign/key.pem"))
        // Longer than the issuer lives: capped, and said.
        let (capped, note) = try runProgram(hbone, ["ca", "issue", "--ca", d + "/east", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b",
                                                    "--out", d + "/svid", "--ttl", "72h"], includeErrors: true)
        #expect(capped == 0 && note.contains("capped at the issuer's expiry"), "\(note)")
        // check cacerts: a key that is not the certificate's.
        try FileManager.default.copyItem(atPath: d + "/east", toPath: d + "/mixed")
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "west", "--out", d + "/west"]) == 0)
        try FileManager.default.removeItem(atPath: d + "/mixed/ca-key.pem")
        try FileManager.default.copyItem(atPath: d + "/west/ca-key.pem", toPath: d + "/mixed/ca-key.pem")
        let (bad, report) = try exec(hbone, ["check", "cacerts", d + "/mixed"])
        #expect(bad == 1 && report.contains("ca-key.pem does not belong to ca-cert.pem"), "\(report)")
    }

    /// certificates.ca also reads the kubernetes.io/tls layout (tls.crt, tls.key, ca.crt) that
    /// cert-manager writes, as istiod does.
    @Test func certManagerLayoutIssues() throws {
        let d = try freshDir("ca-tls")
        #expect(try ca(["root", "--out", d + "/root"]) == 0)
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "east", "--out", d + "/east"]) == 0)
        try FileManager.default.createDirectory(atPath: d + "/tls", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: d + "/east/ca-cert.pem", toPath: d + "/tls/tls.crt")
        try FileManager.default.copyItem(atPath: d + "/east/ca-key.pem", toPath: d + "/tls/tls.key")
        try FileManager.default.copyItem(atPath: d + "/root/root-cert.pem", toPath: d + "/tls/ca.crt")
        #expect(try ca(["intermediate", "--root", d + "/root", "--cluster", "west", "--out", d + "/west"]) == 0)
        var o = Mesh.Options()
        o.eastCA = d + "/tls"
        o.westCA = d + "/west"
        o.eastBundle = d + "/root/root-cert.pem"
        o.westBundle = d + "/root/root-cert.pem"
        let mesh = try Mesh(net: 116, o)
        defer { mesh.stop() }
        #expect(try mesh.client("echo", ["--size", "1000"])["intact"] as? Bool == true)
        #expect(mesh.log(mesh.eastLog).contains("issued SVID"))
    }
}
