import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The DNS proxy of a real hbone, asked by an independent client (scripts/lib/dns_tool.py, from
/// RFC 1035 with Python's standard library), forwarding to a stand-in upstream resolver.
@Suite(.serialized) struct DNSTests {
    static let net = 127
    var dns: String { "127.0.\(Self.net).2:15053" }
    var upstream: String { "127.0.\(Self.net).53:5353" }

    func query(_ name: String, type: String = "A", tcp: Bool = false, source: String? = "127.0.127.10", raw: String? = nil,
               timeout: Double = 5) throws -> [String: Any] {
        var args = [repositoryRoot + "/scripts/lib/dns_tool.py", "query", "--server", dns, "--name", name, "--type", type,
                    "--timeout", "\(timeout)"]
        if tcp { args.append("--tcp") }
        if let source { args += ["--source", source] }
        if let raw { args += ["--raw", raw] }
        return try runJSON("/usr/bin/python3", args)
    }

    func answers(_ r: [String: Any]) -> [[String]] {
        (r["answers"] as? [[Any]] ?? []).map { $0.map { "\($0)" } }
    }

    @Test func meshNamesAreAnsweredHereAndOthersUpstream() throws {
        var o = Mesh.Options()
        o.eastExtra = "  dns: {address: \"\(dns)\", upstreams: [\"\(upstream)\"], upstreamTimeout: 300ms}"
        o.topLevel = """
        services:
        - {name: ledger, namespace: payments, vips: ["127.0.\(Self.net).50"], ports: {8080: 8080}}
        """
        let mesh = try Mesh(net: Self.net, o, eastOnly: true)
        defer { mesh.stop() }
        let upstreamLog = mesh.dir + "/upstream.log"
        try mesh.start("/usr/bin/python3", [repositoryRoot + "/scripts/lib/dns_tool.py", "upstream", "--listen", upstream,
                                            "--log", upstreamLog, "--ready", mesh.dir + "/upstream.ready"], log: mesh.dir + "/upstream.err")
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: mesh.dir + "/upstream.ready") })
        let asked = { mesh.log(upstreamLog) }

        // 1. A service, by the names a pod in payments may use: answered here (authoritative, TTL
        //    30), over UDP and TCP; upstream never asked.
        let vip = "127.0.\(Self.net).50"
        let short = try query("ledger")
        #expect(short["rcode"] as? Int == 0 && short["aa"] as? Bool == true && short["id_ok"] as? Bool == true, "\(short)")
        #expect(answers(short) == [["ledger", "A", "30", vip]], "\(short)")
        let searched = try query("ledger.payments.payments.svc.cluster.local")
        #expect(answers(searched) == [["ledger.payments.payments.svc.cluster.local", "CNAME", "30", "ledger.payments"],
                                      ["ledger.payments", "A", "30", vip]], "\(searched)")
        let overTCP = try query("Ledger.Payments.svc.cluster.local", tcp: true)
        #expect(answers(overTCP) == [["Ledger.Payments.svc.cluster.local", "A", "30", vip]], "\(overTCP)")
        // The name exists without an IPv6 address: NOERROR and no records (not NXDOMAIN).
        let v6 = try query("ledger", type: "AAAA")
        #expect(v6["rcode"] as? Int == 0 && answers(v6).isEmpty && v6["aa"] as? Bool == true, "\(v6)")
        #expect(!asked().contains("ledger"), "\(asked())")

        // 2. Other names go upstream, answers come back as upstream gave them.
        let other = try query("www.example.com")
        #expect(answers(other) == [["www.example.com", "A", "60", "203.0.113.1"]] && other["aa"] as? Bool == false, "\(other)")
        #expect(try query("nx.example.com")["rcode"] as? Int == 3)
        // A short name from a client the proxy does not know is not completed with a namespace.
        #expect(answers(try query("ledger", source: "127.0.\(Self.net).99")) == [["ledger", "A", "60", "203.0.113.1"]])
        // Too big for UDP: truncated, and the client's retry over TCP is forwarded over TCP.
        let bigUDP = try query("big.example.com")
        #expect(bigUDP["tc"] as? Bool == true && answers(bigUDP).isEmpty, "\(bigUDP)")
        let bigTCP = try query("big.example.com", tcp: true)
        #expect(answers(bigTCP).count == 100 && bigTCP["tc"] as? Bool == false, "\(bigTCP)")
        #expect(asked().contains("udp 127.0.0.1 big.example.com") && asked().contains("tcp 127.0.0.1 big.example.com"), "\(asked())")

        // 3. Replies that are not the answer (another ID, another question) are not taken.
        let spoof = try query("spoof.example.com")
        #expect(answers(spoof) == [["spoof.example.com", "A", "60", "203.0.113.1"]], "\(spoof)")

        // 4. An upstream that never answers: two tries, then SERVFAIL.
        let started = Date()
        let slow = try query("slow.example.com")
        #expect(slow["rcode"] as? Int == 2, "\(slow)")
        #expect(Date().timeIntervalSince(started) >= 0.55, "answered before both tries ran out")
        #expect(asked().components(separatedBy: "slow.example.com").count - 1 == 2, "\(asked())")

        // 5. Broken messages: answered with FORMERR or NOTIMP when they can be, never crash it.
        let twoQuestions = "abcd010000020000000000000161000001000103626262000001" + "0001"
        #expect(try query("x", raw: twoQuestions)["rcode"] as? Int == 1)
        #expect(try query("x", raw: "abcd2900" + "00010000000000000161000001" + "0001")["rcode"] as? Int == 4)
        let response = try query("x", raw: "abcd8100000100000000000001610000010001", timeout: 0.5)
        #expect(response["error"] != nil, "a response sent as a query was answered: \(response)")
        #expect(answers(try query("ledger")) == [["ledger", "A", "30", vip]])

        // 6. ztunnel's series, by query type, protocol and the client's canonical service.
        let metrics = try runProgram("/usr/bin/curl", ["-s", "http://\(mesh.eastAdmin):15020/metrics"]).output
        let checkout = "request_query_type=\"a\",request_protocol=\"udp\",source_canonical_service=\"checkout-0\",source_canonical_revision=\"latest\""
        func value(_ series: String) -> Int? {
            metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
        }
        #expect(value("istio_dns_requests_total{\(checkout)}") == 8, "\(metrics.split(separator: "\n").filter { $0.contains("dns") })")
        #expect(value("istio_dns_upstream_requests_total{\(checkout)}") == 5)
        #expect(value("istio_dns_upstream_failures_total{\(checkout)}") == 1)
        #expect(value("istio_dns_upstream_request_duration_seconds_count{\(checkout)}") == 5)
        let config = mesh.configDump(mesh.eastAdmin)["config"] as? [String: Any]
        #expect(config?["dnsProxy"] as? Bool == true && (config?["dns"] as? [String: Any])?["upstreams"] as? [String] == [upstream],
                "\(String(describing: config))")
        #expect(value("hbone_dns_problems_total{reason=\"malformed\"}") == 2 && value("hbone_dns_problems_total{reason=\"not_a_query\"}") == 1)
    }
}
