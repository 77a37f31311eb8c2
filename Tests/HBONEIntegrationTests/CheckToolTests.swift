import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `hbone check` judges a server as the proxy would: its own trust domain unless told otherwise,
/// a clear word for a refused port or a silent server, host names accepted.
@Suite(.serialized) struct CheckToolTests {
    let client = TestPKI.path("certs-east/payments/checkout")
    let bundle = TestPKI.path("bundle-root.pem")

    func check(_ args: [String]) throws -> (status: Int32, output: String, seconds: Double) {
        let start = Date()
        let (status, output) = try runProgram(hboneBinary, ["check"] + args, includeErrors: true)
        return (status, output, Date().timeIntervalSince(start))
    }

    @Test func aServerOfAnotherTrustDomainIsUntrustedUnlessNamed() throws {
        let dir = NSTemporaryDirectory() + "hbone-check-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = [repositoryRoot + "/scripts/lib/h2_interop.py", "server", "--listen", "127.0.115.30:15008",
                            "--cert-dir", TestPKI.path("bad/foreign-trust-domain"), "--ca", bundle, "--record", dir + "/r.jsonl", "--ready", dir + "/ready"]
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        #expect(waitForPort("127.0.115.30", 15008))
        // The chain ends at the shared root, but spiffe://other.mesh is not our trust domain: the
        // proxy would refuse it, and so does check, with the proxy's reason.
        let refused = try check(["127.0.115.30:15008", "--cert-dir", client, "--ca", bundle])
        #expect(refused.status == 1 && refused.output.contains("other.mesh") && refused.output.contains("NOT trusted"), "\(refused.output)")
        let named = try check(["127.0.115.30:15008", "--cert-dir", client, "--ca", bundle, "--trust-domain", "other.mesh"])
        #expect(named.status == 0 && named.output.contains("verdict:       trusted"), "\(named.output)")
    }

    @Test func aRefusedPortAndASilentServerAreNamedAsSuch() throws {
        // Nothing listens: "connection refused", and no verdict about a chain nobody presented.
        let closed = try check(["localhost:1", "--cert-dir", client, "--ca", bundle])
        #expect(closed.status == 1 && closed.output.contains("connection refused"), "\(closed.output)")
        #expect(!closed.output.contains("chain ends at bundle root"), "\(closed.output)")
        // A server that accepts and says nothing: "timed out" after --timeout.
        let fd = listeningSocket("127.0.115.31", 15008)
        #expect(fd >= 0)
        defer { close(fd) }
        let silent = try check(["127.0.115.31:15008", "--cert-dir", client, "--ca", bundle, "--timeout", "1"])
        #expect(silent.status == 1 && silent.output.contains("timed out"), "\(silent.output)")
        #expect(silent.seconds < 5, "took \(silent.seconds) s")
        // Usage errors stay usage errors.
        #expect(try check(["127.0.115.31:15008", "--cert-dir", client, "--timeout", "0"]).status == 64)
    }
}
