import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A waypoint enrolled in the mesh behind a real hbone (ztunnel's application tunnel): the app
/// behind it reads a PROXY protocol v2 header with an independent parser (scripts/lib/echo_server.py).
@Suite(.serialized) struct ApplicationTunnelTests {
    static let net = 129

    /// east sends a connection to a service through its waypoint; west, the waypoint's node, ends
    /// the tunnel (naming the service, not the waypoint) and hands it to the waypoint's tunnel
    /// port behind a header that names the client, the service it dialled and the client's SVID.
    @Test func aWaypointBehindTheProxyGetsEachTunnelBehindAProxyHeader() throws {
        let net = Self.net
        let dir = NSTemporaryDirectory() + "hbone-apptunnel-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let record = dir + "/headers.jsonl"
        let app = Process()
        app.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        app.arguments = [repositoryRoot + "/scripts/lib/echo_server.py", "127.0.\(net).40", "15088", "--proxy-protocol", record,
                         "--ready-file", dir + "/ready"]
        try app.run()
        defer { kill(app.processIdentifier, SIGKILL); app.waitUntilExit() }
        var o = Mesh.Options()
        o.topLevel = """
        - uid: west//waypoint-0
          name: waypoint-0
          namespace: payments
          serviceAccount: audit
          workloadIps: ["127.0.\(net).40"]
          protocol: HBONE
          node: west
          applicationTunnel: {protocol: PROXY, port: 15088}
        services:
        - name: reports
          namespace: payments
          vips: ["127.0.\(net).50"]
          ports: {"80": 8080}
          waypoint: {destination: "/127.0.\(net).40"}
        """
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        // Not probed by a connection: it would be one without a header.
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/ready") })
        #expect(waitForPort("127.0.\(net).40", 15008))
        for _ in 0..<2 {
            let r = try mesh.client("echo", dest: "127.0.\(net).50:80", ["--size", "20000"])
            #expect(r["intact"] as? Bool == true, "\(r) \(mesh.log(mesh.westLog).suffix(1500))")
        }
        let headers = ((try? String(contentsOfFile: record, encoding: .utf8))?.split(separator: "\n") ?? [])
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(headers.count == 2, "\(headers)")
        for h in headers {
            #expect(h["error"] == nil, "\(h)")
            #expect(h["version"] as? Int == 2 && h["command"] as? Int == 1 && h["family"] as? Int == 1 && h["transport"] as? Int == 1, "\(h)")
            #expect((h["src"] as? String)?.hasPrefix("127.0.\(net).10:") == true, "\(h)")
            #expect(h["dst"] as? String == "127.0.\(net).50:80", "\(h)")
            #expect((h["tlvs"] as? [String: String]) == ["0xD0": "spiffe://cluster.local/ns/payments/sa/checkout"], "\(h)")
        }
        // West counts them for the waypoint, and for the service the client dialled.
        let metrics = (try? runProgram("/usr/bin/curl", ["-s", "http://\(mesh.westAdmin):15020/metrics"]))?.output ?? ""
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("istio_tcp_connections_opened_total{") && $0.contains("reporter=\"destination\"")
            && $0.contains("destination_workload=\"waypoint-0\"") && $0.contains("destination_service=\"reports.payments.svc.cluster.local\"") },
                "\(metrics.split(separator: "\n").filter { $0.hasPrefix("istio_tcp_connections_opened_total") })")
        // East's pooled HBONE connections (one per east worker that carried a client) are west's
        // open accepted sockets (ztunnel's gauge); no plaintext socket is open.
        func value(_ series: String) -> Int? {
            metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
        }
        let sockets = value("istio_tcp_sockets_open{reporter=\"destination\"}")
        #expect(sockets != nil && sockets == value("hbone_hbone_connections{direction=\"inbound\"}") && (sockets ?? 0) >= 1,
                "\(metrics.split(separator: "\n").filter { $0.contains("sockets_open") || $0.contains("hbone_connections") })")
        // The dump shows the tunnel as ztunnel's does.
        let workloads = mesh.configDump(mesh.westAdmin)["workloads"] as? [[String: Any]] ?? []
        let waypoint = workloads.first { $0["name"] as? String == "waypoint-0" }
        #expect((waypoint?["applicationTunnel"] as? [String: Any])?["protocol"] as? String == "PROXY")
        #expect((waypoint?["applicationTunnel"] as? [String: Any])?["port"] as? Int == 15088)
    }
}
