import Foundation
import Testing
import HBONETestSupport

/// Trust-bundle and SVID changes on disk apply to new handshakes without a restart or dropped tunnels.
@Suite(.serialized) struct RotationTests {
    func write(_ source: String, to destination: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        try data.write(to: URL(fileURLWithPath: destination), options: .atomic)
    }

    /// A mesh whose west bundle is a file of the test's, first holding `initial`.
    func meshWithWestBundle(net: Int, initial: String) throws -> (mesh: Mesh, bundle: String, dir: String) {
        let dir = NSTemporaryDirectory() + "hbone-rot-\(net)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bundle = dir + "/roots.pem"
        try write(TestPKI.path(initial), to: bundle)
        var o = Mesh.Options()
        o.westBundle = bundle
        return (try Mesh(net: net, o), bundle, dir)
    }

    /// A fresh mTLS handshake + CONNECT to west from a client whose SVID chains to the unrelated root.
    func otherRootClient(_ mesh: Mesh) throws -> Int? {
        let r = try runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/h2_interop.py", "client", "--connect", "\(mesh.westIP):15008",
                                                 "--cert-dir", TestPKI.path("certs-other/payments/checkout"), "--ca", TestPKI.path("bundle-root-and-other.pem"),
                                                 "--authority", mesh.echo])
        return r["status"] as? Int
    }

    @Test func rootAddedThenRemovedFromTheBundle() throws {
        let (mesh, bundle, _) = try meshWithWestBundle(net: 64, initial: "bundle-root.pem")
        defer { mesh.stop() }
        #expect(try otherRootClient(mesh) == nil)                    // refused: unknown root

        // Rotation step: west trusts old + new roots → a peer under either is accepted.
        try write(TestPKI.path("bundle-root-and-other.pem"), to: bundle)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("configuration applied") })
        #expect(try otherRootClient(mesh) == 200)
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)   // the old root still works

        // The other root removed again → new handshakes from under it are refused.
        try write(TestPKI.path("bundle-root.pem"), to: bundle)
        #expect(mesh.waitForLog(mesh.westLog) { $0.components(separatedBy: "configuration applied").count >= 3 })
        #expect(try otherRootClient(mesh) == nil)
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
    }

    /// Removing a root from the bundle also ends connections already open under it: GOAWAY at once,
    /// open tunnels cut at the drain deadline (5 s). Connections under the roots that stay are untouched.
    @Test func connectionUnderARemovedRootIsClosed() throws {
        let (mesh, bundle, dir) = try meshWithWestBundle(net: 72, initial: "bundle-root-and-other.pem")
        defer { mesh.stop() }
        // A pooled east→west connection under the shared root, and a held tunnel under the other root.
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
        let ready = dir + "/ready"
        let hold = Process()
        hold.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        hold.arguments = [repositoryRoot + "/scripts/lib/h2_interop.py", "hold", "--connect", "\(mesh.westIP):15008",
                          "--cert-dir", TestPKI.path("certs-other/payments/checkout"), "--ca", TestPKI.path("bundle-root-and-other.pem"),
                          "--authority", mesh.echo, "--message", "20", "--ready", ready]
        let out = Pipe()
        hold.standardOutput = out
        try hold.run()
        defer { if hold.isRunning { kill(hold.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) && Date() < deadline { usleep(50_000) }
        #expect(FileManager.default.fileExists(atPath: ready), "the other-root tunnel never opened")

        try write(TestPKI.path("bundle-root.pem"), to: bundle)
        let result = try JSONSerialization.jsonObject(with: out.fileHandleForReading.readDataToEndOfFile()) as? [String: Any] ?? [:]
        hold.waitUntilExit()
        #expect(result["status"] as? Int == 200)
        #expect(result["goaway"] as? Bool == true)
        #expect(result["closed"] as? Bool == true)
        let after = result["after"] as? Double ?? 99
        #expect(after > 3 && after < 12, "cut after \(after) s")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("its peer's root left the trust bundle") })
        let west = try String(contentsOfFile: mesh.westLog, encoding: .utf8)
        #expect(west.components(separatedBy: "its peer's root left the trust bundle").count - 1 == 1)
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
    }

    @Test func svidReplacedUnderAnOpenTunnel() throws {
        let dir = NSTemporaryDirectory() + "hbone-svid-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/payments/ledger", withIntermediateDirectories: true)
        for f in ["cert-chain.pem", "key.pem"] { try write(TestPKI.path("certs-west/payments/ledger/\(f)"), to: dir + "/payments/ledger/\(f)") }
        var o = Mesh.Options()
        o.westCertificates = dir
        let mesh = try Mesh(net: 65, o)
        defer { mesh.stop() }
        let serial = { () -> String in
            let r = try? OperationsTests().http("http://\(mesh.westAdmin):15000/config_dump")
            let json = try? JSONSerialization.jsonObject(with: Data((r?["body"] as? String ?? "{}").utf8)) as? [String: Any]
            let certs = json?["certificates"] as? [[String: Any]]
            return ((certs?.first?["certChain"] as? [[String: Any]])?.first?["serialNumber"] as? String) ?? ""
        }
        let before = serial()
        #expect(!before.isEmpty)

        // A tunnel that stays open across the rotation.
        let holder = try mesh.startClient("slowecho", ["--count", "25"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}") { $0 >= 1 })
        // Key first, then chain (the order a careless writer might use); a half-written state keeps the old SVID.
        try write(TestPKI.path("certs-west-next/payments/ledger/key.pem"), to: dir + "/payments/ledger/key.pem")
        try write(TestPKI.path("certs-west-next/payments/ledger/cert-chain.pem"), to: dir + "/payments/ledger/cert-chain.pem")
        let deadline = Date().addingTimeInterval(6)
        while serial() == before && Date() < deadline { usleep(200_000) }
        let after = serial()
        #expect(after != before && !after.isEmpty, "serial stayed \(before)")
        let r = try holder.result()
        #expect(r["intact"] as? Bool == true, "the open tunnel was disturbed: \(r)")
        // New tunnels work under the new SVID.
        #expect(try mesh.client("echo", ["--size", "1000"])["intact"] as? Bool == true)
    }
}
