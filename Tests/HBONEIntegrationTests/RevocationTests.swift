import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Certificate revocation lists in real proxies (ztunnel's CRL_PATH), written by the openssl CLI
/// (scripts/gen-test-pki.sh): east holds a checkout SVID that east's intermediate revokes.
@Suite(.serialized) struct RevocationIntegrationTests {
    /// west starts with an empty list file; the list revoking east's SVID is written while a tunnel
    /// is open: the file watcher reloads, the open connection is cut at once (not at a drain
    /// deadline), the next handshake is refused, and both are counted as ztunnel counts them.
    @Test func aListWrittenWhileATunnelIsOpenCutsItAndRefusesTheNext() throws {
        let dir = NSTemporaryDirectory() + "hbone-crl-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let crl = dir + "/crl.pem"
        try Data().write(to: URL(fileURLWithPath: crl))
        var o = Mesh.Options()
        o.eastCertificates = "certs-revoked"
        o.westEnvironment = ["CRL_PATH": crl]
        let mesh = try Mesh(net: 130, o)
        defer { mesh.stop() }
        let first = try mesh.client("echo", ["--size", "1000"])
        #expect(first["intact"] as? Bool == true, "\(first)")
        let holder = try mesh.startClient("hold", ["--size", "20"])
        #expect(mesh.waitForLog(mesh.eastLog, timeout: 1) { _ in false } == false)   // let it connect
        try Data(TestPKI.bytes("crl/east-revokes-checkout.pem")).write(to: URL(fileURLWithPath: crl + ".new"))
        #expect(rename(crl + ".new", crl) == 0)
        let r = try holder.result()
        #expect(r["echoed"] as? String == "hi")
        #expect(r["closed_by_peer"] as? Bool == true, "\(r)")
        #expect((r["after"] as? Double ?? 99) < 10, "\(r)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("closing HBONE connection: its peer's certificate was revoked") })
        let refused = try mesh.client("expect-fail")
        #expect(refused["failed"] as? Bool == true, "\(refused)")
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "istio_crl_policy_rejections_total{reporter=\"destination\"}") { $0 >= 2 })
        #expect(mesh.metric(admin: mesh.westAdmin, "hbone_handshake_failures_total{reason=\"revoked\"}") ?? 0 >= 1)
        let dump = mesh.configDump(mesh.westAdmin)["crl"] as? [String: Any]
        let lists = dump?["lists"] as? [[String: Any]] ?? []
        #expect(dump?["path"] as? String == crl && lists.count == 1 && lists.first?["revoked"] as? Int == 1, "\(String(describing: dump))")
        // A damaged list is refused: the last good one stays in force.
        try Data("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".utf8).write(to: URL(fileURLWithPath: crl))
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("crlPath \(crl)") }, "\(mesh.log(mesh.westLog).suffix(1500))")
        let still = try mesh.client("expect-fail")
        #expect(still["failed"] as? Bool == true, "\(still)")
    }

    /// A list that is not one stops the proxy at start-up, naming the file.
    @Test func aDamagedListAtStartUpIsAConfigError() throws {
        let dir = NSTemporaryDirectory() + "hbone-crl-bad-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("not a list".utf8).write(to: URL(fileURLWithPath: dir + "/crl.pem"))
        let config = """
        hbone:
          node: west
          rootCertificates: \(TestPKI.path("bundle-root.pem"))
          certificates: {directory: \(TestPKI.path("certs-west"))}
          crlPath: \(dir)/crl.pem
          listen: {admin: 127.0.130.9:15000, metrics: 127.0.130.9:15020, readiness: 127.0.130.9:15021}
        """
        try config.write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (status, output) = try runProgram(hboneBinary, ["validate", "--config", dir + "/c.yaml"], includeErrors: true)
        #expect(status != 0 && output.contains("crlPath \(dir)/crl.pem"), "\(status) \(output)")
    }
}
