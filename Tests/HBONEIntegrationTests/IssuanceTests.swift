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
        let loops = try (0..<2).map { _ -> (Process, Pipe) in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", repositoryRoot + "/scripts/lib/tunnel_client.py", "loop", "--socks", mesh.eastSocks,
                           "--source", mesh.eastIP, "--dest", mesh.echo, "--size", "9"]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            return (p, pipe)
        }
        // Midway: west's cacerts get a new intermediate (same root); every west SVID is re-issued under it.
        usleep(4_000_000)
        try copyCA("west-next", to: dir + "/west")
        var ok = 0
        for (p, pipe) in loops {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            #expect(r["failed"] as? Int == 0, "\(r)")
            #expect(r["corrupted"] as? Int == 0, "\(r)")
            ok += r["ok"] as? Int ?? 0
        }
        #expect(ok >= 20, "only \(ok) tunnels completed")
        let west = mesh.log(mesh.westLog), east = mesh.log(mesh.eastLog)
        #expect(west.components(separatedBy: "issued SVID").count - 1 >= 4, "west renewed too rarely")
        #expect(east.components(separatedBy: "issued SVID").count - 1 >= 4, "east renewed too rarely")
        #expect(west.contains("certificates.ca: this node holds an intermediate CA key"))
        let dump = try OperationsTests().http("http://\(mesh.westAdmin):15000/config_dump")
        let json = try JSONSerialization.jsonObject(with: Data((dump["body"] as? String ?? "{}").utf8)) as? [String: Any] ?? [:]
        let chain = ((json["certificates"] as? [[String: Any]])?.first?["certChain"] as? [[String: Any]]) ?? []
        #expect((chain.first?["issuer"] as? String ?? "").contains("cluster-west-next intermediate"))
    }
}
