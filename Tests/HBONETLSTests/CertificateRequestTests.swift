import Foundation
import Testing
import HBONETestSupport
import HBONEIdentity
@testable import HBONETLS

/// The CSR a node proxy sends the Istio CA, checked with the openssl CLI, and the checks on the
/// CA's answer: right identity, our key, a chain to the trusted roots.
@Suite struct CertificateRequestTests {
    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

    func scratch(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "hbone-csr-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Signs `request` with a CA of the test PKI using the openssl CLI (copying the requested SAN).
    func sign(_ request: CertificateRequest, ca: String, in dir: String) throws -> String {
        try request.pem.write(toFile: dir + "/req.pem", atomically: true, encoding: .utf8)
        #expect(run("/usr/bin/openssl", ["x509", "-req", "-in", dir + "/req.pem", "-CA", TestPKI.path("\(ca)/ca-cert.pem"),
                                         "-CAkey", TestPKI.path("\(ca)/ca-key.pem"), "-set_serial", "77", "-days", "1",
                                         "-copy_extensions", "copy", "-out", dir + "/leaf.pem"]) == 0)
        return try String(contentsOfFile: dir + "/leaf.pem", encoding: .utf8)
    }

    @Test func theCSRIsWhatIstioExpectsAsOpenSSLReadsIt() throws {
        let request = try CertificateRequest(for: Self.ledger)
        let dir = scratch("shape")
        try request.pem.write(toFile: dir + "/req.pem", atomically: true, encoding: .utf8)
        let (status, text) = try runCapturing("/usr/bin/openssl", ["req", "-in", dir + "/req.pem", "-noout", "-verify", "-text"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("verify OK"), "\(text)")
        #expect(text.contains("Subject: \n") || text.contains("Subject:\n") || text.contains("Subject: \r"), "the subject must be empty: \(text)")
        #expect(text.contains("X509v3 Subject Alternative Name: critical"), "\(text)")
        #expect(text.contains("URI:spiffe://cluster.local/ns/payments/sa/ledger"), "\(text)")
        #expect(text.contains("prime256v1") || text.contains("P-256"), "\(text)")
    }

    @Test func anAnswerUnderTheRootWithOurKeyAndIdentityIsAccepted() throws {
        let request = try CertificateRequest(for: Self.ledger)
        let dir = scratch("ok")
        let leaf = try sign(request, ca: "west", in: dir)
        let chain = [leaf, try String(contentsOfFile: TestPKI.path("west/ca-cert.pem"), encoding: .utf8),
                     try String(contentsOfFile: TestPKI.path("west/root-cert.pem"), encoding: .utf8)]
        let svid = try request.accept(chain, trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")))
        #expect(svid.identity == Self.ledger)
        #expect(svid.chain.count == 2)   // the root is not presented
    }

    @Test func answersThatMustNotBeServedAreRefusedWithAReason() throws {
        let request = try CertificateRequest(for: Self.ledger)
        let bundle = try TrustBundle(pem: TestPKI.bytes("bundle-root.pem"))
        let dir = scratch("bad")
        func reason(_ chain: [String]) -> String {
            do { _ = try request.accept(chain, trust: bundle); return "accepted" } catch { return error.reason }
        }
        #expect(reason([]).contains("empty chain"))
        #expect(reason(["not a certificate"]).contains("cert_chain[0] is not a PEM certificate"))
        // Another workload's certificate: not our key.
        let other = try String(contentsOfFile: TestPKI.path("certs-west/payments/audit/cert-chain.pem"), encoding: .utf8)
        #expect(reason([other]).contains("private key does not match"))
        // Our key, but a root we do not trust.
        let foreign = try sign(request, ca: "other", in: dir)
        let foreignCA = try String(contentsOfFile: TestPKI.path("other/ca-cert.pem"), encoding: .utf8)
        #expect(reason([foreign, foreignCA]).contains("does not verify against the trust bundle"))
        // Our key, but the CA put another identity in it.
        let wrongDir = scratch("wrong")
        try request.pem.write(toFile: wrongDir + "/req.pem", atomically: true, encoding: .utf8)
        try "subjectAltName=critical,URI:spiffe://cluster.local/ns/payments/sa/audit\n".write(toFile: wrongDir + "/ext", atomically: true, encoding: .utf8)
        #expect(run("/usr/bin/openssl", ["x509", "-req", "-in", wrongDir + "/req.pem", "-CA", TestPKI.path("west/ca-cert.pem"),
                                         "-CAkey", TestPKI.path("west/ca-key.pem"), "-set_serial", "78", "-days", "1",
                                         "-extfile", wrongDir + "/ext", "-out", wrongDir + "/leaf.pem"]) == 0)
        let wrongLeaf = try String(contentsOfFile: wrongDir + "/leaf.pem", encoding: .utf8)
        #expect(reason([wrongLeaf]).contains("the CA issued spiffe://cluster.local/ns/payments/sa/audit, not spiffe://cluster.local/ns/payments/sa/ledger"))
    }
}

/// Runs a program, capturing stdout and stderr together.
func runCapturing(_ program: String, _ arguments: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
