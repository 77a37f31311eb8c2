import Foundation
import Testing
import HBONETestSupport

/// SVIDs issued by the proxies themselves from cacerts, renewed every few seconds and re-issued
/// under a new intermediate, while tunnels keep opening and moving data.
@Suite(.serialized) struct IssuanceTests {
    func copyCA(_ from: String, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: TestPKI.path("\(from)/\(f)")))
            try data.write(to: URL(fileURLWithPath: "\(dir)/\(f)"), options: .atomic)
        }
    }

    /// Two clients that keep opening tunnels and checking their bytes for `seconds`.
    func startTrafficLoops(_ mesh: Mesh, seconds: Int) throws -> [BackgroundClient] {
        try (0..<2).map { _ in try mesh.startClient("loop", ["--size", "\(seconds)"]) }
    }

    func count(_ text: String, _ needle: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// The issuer of the first local SVID in a proxy's /config_dump.
    func svidIssuer(_ admin: String) -> String {
        let dump = try? OperationsTests().http("http://\(admin):15000/config_dump")
        let json = (try? JSONSerialization.jsonObject(with: Data((dump?["body"] as? String ?? "{}").utf8))) as? [String: Any] ?? [:]
        let cert = (json["certificates"] as? [[String: Any]])?.first
        return (cert?["certChain"] as? [[String: Any]])?.first?["issuer"] as? String ?? ""
    }

    /// Zero failed and zero corrupted tunnels, and enough of them to mean something.
    func expectNoLoss(_ loops: [BackgroundClient]) throws {
        var ok = 0
        for loop in loops {
            let r = try loop.result()
            #expect(r["failed"] as? Int == 0, "\(r)")
            #expect(r["corrupted"] as? Int == 0, "\(r)")
            ok += r["ok"] as? Int ?? 0
        }
        #expect(ok >= 20, "only \(ok) tunnels completed")
    }

    @Test func rotationUnderTrafficLosesNothing() throws {
        let dir = NSTemporaryDirectory() + "hbone-issue-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try copyCA("east", to: dir + "/east")
        try copyCA("west", to: dir + "/west")
        var o = Mesh.Options()
        o.eastCA = dir + "/east"
        o.westCA = dir + "/west"
        o.caTTL = "4s"                    // renewed at half-life: every 2 s
        let mesh = try Mesh(net: 67, o)
        defer { mesh.stop() }
        let loops = try startTrafficLoops(mesh, seconds: 9)
        // Once west has renewed under traffic, its cacerts get a new intermediate (same root); every
        // west SVID is re-issued under it.
        let issuedAtStart = count(mesh.log(mesh.westLog), "issued SVID")
        #expect(waitUntil(timeout: 8) { count(mesh.log(mesh.westLog), "issued SVID") > issuedAtStart })
        try copyCA("west-next", to: dir + "/west")
        #expect(waitUntil(timeout: 8) { svidIssuer(mesh.westAdmin).contains("cluster-west-next intermediate") })
        try expectNoLoss(loops)
        let west = mesh.log(mesh.westLog), east = mesh.log(mesh.eastLog)
        #expect(west.components(separatedBy: "issued SVID").count - 1 >= 4, "west renewed too rarely")
        #expect(east.components(separatedBy: "issued SVID").count - 1 >= 4, "east renewed too rarely")
        #expect(west.contains("certificates.ca: this node holds an intermediate CA key"))
        let dump = try OperationsTests().http("http://\(mesh.westAdmin):15000/config_dump")
        let json = try JSONSerialization.jsonObject(with: Data((dump["body"] as? String ?? "{}").utf8)) as? [String: Any] ?? [:]
        let chain = ((json["certificates"] as? [[String: Any]])?.first?["certChain"] as? [[String: Any]]) ?? []
        #expect((chain.first?["issuer"] as? String ?? "").contains("cluster-west-next intermediate"))
    }

    @Test func rootRotationUnderTrafficLosesNothing() throws {
        let dir = NSTemporaryDirectory() + "hbone-rootrot-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try copyCA("east", to: dir + "/east")
        try copyCA("west", to: dir + "/west")
        func bundle(_ name: String, _ file: String) throws {
            let data = try Data(contentsOf: URL(fileURLWithPath: TestPKI.path(file)))
            try data.write(to: URL(fileURLWithPath: "\(dir)/\(name)-bundle.pem"), options: .atomic)
        }
        try bundle("east", "bundle-root.pem")
        try bundle("west", "bundle-root.pem")
        var o = Mesh.Options()
        o.eastCA = dir + "/east"
        o.westCA = dir + "/west"
        o.eastBundle = dir + "/east-bundle.pem"
        o.westBundle = dir + "/west-bundle.pem"
        let mesh = try Mesh(net: 68, o)
        defer { mesh.stop() }
        let loops = try startTrafficLoops(mesh, seconds: 11)
        // Each step waits for the proxies to report the previous one applied, under traffic.
        #expect(waitUntil(timeout: 8) { mesh.log(mesh.westLog).contains("connection complete") })
        // 1. Both sides trust old + new roots.
        let applied = (count(mesh.log(mesh.eastLog), "configuration applied"), count(mesh.log(mesh.westLog), "configuration applied"))
        try bundle("east", "bundle-root-and-root2.pem")
        try bundle("west", "bundle-root-and-root2.pem")
        #expect(waitUntil(timeout: 8) {
            count(mesh.log(mesh.eastLog), "configuration applied") > applied.0 && count(mesh.log(mesh.westLog), "configuration applied") > applied.1
        })
        // 2. Both clusters move to intermediates under the new root (every SVID re-issued).
        try copyCA("east2", to: dir + "/east")
        try copyCA("west2", to: dir + "/west")
        #expect(waitUntil(timeout: 8) {
            svidIssuer(mesh.eastAdmin).contains("cluster-east2 intermediate") && svidIssuer(mesh.westAdmin).contains("cluster-west2 intermediate")
        })
        // 3. The old root leaves both bundles.
        try bundle("east", "bundle-root2.pem")
        try bundle("west", "bundle-root2.pem")
        try expectNoLoss(loops)
        #expect(mesh.log(mesh.westLog).components(separatedBy: "configuration applied").count - 1 >= 3)
        // New handshakes after the rotation: a fresh client under the new root works, one under the old root is refused.
        let dump = try OperationsTests().http("http://\(mesh.eastAdmin):15000/config_dump")
        let json = try JSONSerialization.jsonObject(with: Data((dump["body"] as? String ?? "{}").utf8)) as? [String: Any] ?? [:]
        let cert = (json["certificates"] as? [[String: Any]])?.first
        #expect(((cert?["certChain"] as? [[String: Any]])?.first?["issuer"] as? String ?? "").contains("cluster-east2 intermediate"))
        #expect(((cert?["rootCerts"] as? [[String: Any]])?.map { $0["subject"] as? String ?? "" }) == ["CN=hbone mesh root 2,O=hbone-test"])
        func fresh(_ certDir: String) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mesh.binary)
            p.arguments = ["check", "\(mesh.westIP):15008", "--cert-dir", certDir, "--ca", TestPKI.path("bundle-root-and-root2.pem")]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        #expect(try fresh(TestPKI.path("certs-east/payments/checkout")) == 1)     // old root: refused now
        let issue = Process()
        issue.executableURL = URL(fileURLWithPath: mesh.binary)
        issue.arguments = ["ca", "issue", "--ca", TestPKI.path("east2"), "--spiffe-id", "spiffe://cluster.local/ns/payments/sa/checkout", "--out", dir + "/new-svid"]
        issue.standardOutput = FileHandle.nullDevice
        try issue.run()
        issue.waitUntilExit()
        #expect(try fresh(dir + "/new-svid") == 0)                                  // new root: accepted
    }
}
