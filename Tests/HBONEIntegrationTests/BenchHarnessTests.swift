import Foundation
import Testing
import HBONETestSupport

/// The benchmark harness against a real mesh, briefly: the figures it writes are well-formed and
/// carry their same-run baselines, and the report script turns them into JSON, Markdown and SVG.
/// (How fast anything is stays a benchmark; this checks only that the harness works.)
@Suite(.serialized) struct BenchHarnessTests {
    let bench = repositoryRoot + "/.build/debug/hbone-bench"

    func run(_ program: String, _ args: [String]) throws -> (Int32, String) { try runProgram(program, args, includeErrors: true) }

    @Test func handshakeConnectThroughputAndReport() throws {
        let mesh = try Mesh(net: 70)
        defer { mesh.stop() }
        let dir = NSTemporaryDirectory() + "hbone-bench-test-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = dir + "/figures.jsonl"

        let (hs, hsOut) = try run(bench, ["handshake", "--target", "\(mesh.westIP):15008", "--cert-dir", TestPKI.path("certs-east/payments/checkout"),
                                          "--ca", TestPKI.path("bundle-root.pem"), "--source", mesh.eastIP, "--duration", "1", "--warmup", "0.2",
                                          "--connect", "--authority", mesh.echo, "--label", "hbone", "--baseline", "reference=100", "--json", json])
        #expect(hs == 0, "\(hsOut)")
        #expect(hsOut.contains("failures=0"))
        #expect(hsOut.contains("command: "))

        let (tp, tpOut) = try run(bench, ["throughput", "--socks", mesh.eastSocks, "--source", mesh.eastIP, "--dest", "\(mesh.westIP):9100",
                                          "--mib", "8", "--runs", "1", "--streams", "1", "--streams", "2", "--json", json])
        #expect(tp == 0, "\(tpOut)")

        // New connections through SOCKS5 (greeting, CONNECT, 1-byte echo, close), event-driven.
        let (cn, cnOut) = try run(bench, ["connections", "--socks", mesh.eastSocks, "--source", mesh.eastIP, "--dest", "\(mesh.westIP):9101",
                                          "--serve", "--duration", "0.5", "--concurrency", "4", "--json", json])
        #expect(cn == 0, "\(cnOut)")
        #expect(cnOut.contains("client and echo server CPU per new connection"))

        // Round trips beside a zero-work relay chain (two `hbone-bench relay`s in front of the echo).
        let relay1 = "127.0.\(mesh.net).41:9301", relay2 = "127.0.\(mesh.net).42:9302"
        try mesh.start(bench, ["relay", "--listen", relay2, "--to", mesh.echo], log: dir + "/relay2.log")
        try mesh.start(bench, ["relay", "--listen", relay1, "--to", relay2], log: dir + "/relay1.log")
        Thread.sleep(forTimeInterval: 0.5)
        let (lt, ltOut) = try run(bench, ["latency", "--socks", mesh.eastSocks, "--source", mesh.eastIP, "--dest", mesh.echo,
                                          "--count", "200", "--blocks", "2", "--reference", relay1, "--reference-name", "relay-chain", "--json", json])
        #expect(lt == 0, "\(ltOut)")
        #expect(ltOut.contains("relay-chain p50"))

        let lines = try String(contentsOfFile: json, encoding: .utf8).split(separator: "\n")
        let figures = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        // handshake: rate + p50/p99/p99.9 + the client's CPU (server CPU figures only with --server-pid);
        // throughput: 2 stream counts × 2 directions.
        let handshake = figures.filter { $0["benchmark"] as? String == "handshake" }
        #expect(handshake.count == 5)
        #expect(handshake.contains { ($0["name"] as? String ?? "").contains("client CPU per handshake") })
        let throughput = figures.filter { $0["benchmark"] as? String == "throughput" }
        #expect(throughput.count == 4)
        let connections = figures.filter { $0["benchmark"] as? String == "connections" }
        // direct and chain: the client's and echo server's CPU each; the rate beside direct TCP.
        #expect(connections.count == 3)
        #expect(connections.allSatisfy { ($0["value"] as? Double ?? 0) > 0 })
        #expect(connections.filter { $0["baselineName"] as? String == "direct TCP" }.count == 1)
        // 2 sizes × (p50, p99 beside direct; p99 beside own p50; p50, p99 beside the relay chain), no goal on the relay's.
        let latency = figures.filter { $0["benchmark"] as? String == "latency" }
        #expect(latency.count == 10)
        let beside = latency.filter { $0["baselineName"] as? String == "relay-chain" }
        #expect(beside.count == 4 && beside.allSatisfy { $0["target"] == nil && ($0["baseline"] as? Double ?? 0) > 0 })
        for f in throughput {
            #expect((f["value"] as? Double ?? 0) > 0)
            #expect(f["baselineName"] as? String == "direct TCP")
            #expect((f["ratio"] as? Double ?? 0) > 0)
            #expect((f["command"] as? String ?? "").contains("hbone-bench throughput"))
        }

        let (rc, reportOut) = try run("/usr/bin/python3", [repositoryRoot + "/scripts/lib/bench_report.py", json, dir + "/out", "--title", "test"])
        #expect(rc == 0, "\(reportOut)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.json"))) as? [String: Any]
        #expect((report?["figures"] as? [Any])?.count == figures.count)
        let markdown = try String(contentsOfFile: dir + "/out.md", encoding: .utf8)
        #expect(markdown.contains("| throughput | 1 stream upload through 2 proxies |"))
        let svg = try String(contentsOfFile: dir + "/out.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("1 stream download through 2 proxies"))
        try? FileManager.default.removeItem(atPath: dir)
    }
}
