import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// ztunnel's on-demand DNS through a real hbone: services whose endpoints are known by hostname
/// only (istiod's form of a ServiceEntry with `resolution: DNS`), looked up in a stand-in upstream
/// resolver (scripts/lib/dns_tool.py, written from RFC 1035 apart from hbone's DNS code).
@Suite(.serialized) struct OnDemandDNSTests {
    static let net = 134

    @Test func endpointsKnownByHostnameAreLookedUpWhenAConnectionPicksThem() throws {
        let n = Self.net
        let upstream = "127.0.\(n).53:5353"
        var o = Mesh.Options()
        // One loop: each loop keeps its own answers (share-nothing), and this test counts queries.
        o.eastWorkers = 1
        // The search list and ndots east applies (ztunnel's resolver reads the system's).
        let resolvConf = NSTemporaryDirectory() + "hbone-resolv-\(n)-\(getpid()).conf"
        try "search corp.example.test svc.example.test\noptions ndots:1\n".write(toFile: resolvConf, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: resolvConf) }
        o.eastExtra = "  dns: {upstreams: [\"\(upstream)\"], upstreamTimeout: 1500ms, resolvConf: \"\(resolvConf)\"}"
        let names = [("api", "echo", "TCP", 60), ("secure", "secure", "HBONE", 61), ("alias", "alias", "TCP", 62),
                     ("missing", "nx", "TCP", 63), ("gone", "gone", "TCP", 64), ("silent", "slow", "TCP", 65),
                     ("inside", "any", "TCP", 66), ("wide", "wide", "TCP", 67), ("busy", "busy", "TCP", 68)]
        o.topLevel = "services:\n" + names.map { service, _, _, last in
            "- {name: \(service), namespace: payments, hostname: \(service).example.test, vips: [\"127.0.\(n).\(last)\"], ports: {443: 8080}}"
        }.joined(separator: "\n")
            + "\n- {name: short, namespace: payments, hostname: short.example.test, vips: [\"127.0.\(n).69\"], ports: {443: 8080}}"
        o.ledgerExtra = names.map { service, host, proto, _ in
            """
            - uid: ext//\(service)
              name: \(service)
              namespace: payments
              serviceAccount: ledger
              hostname: \(host).example.test
              protocol: \(proto)
              services: {payments/\(service).example.test: {443: 8080}}
            """
        }.joined(separator: "\n") + """

            - uid: ext//short
              name: short
              namespace: payments
              serviceAccount: ledger
              hostname: short
              protocol: TCP
              services: {payments/short.example.test: {443: 8080}}
            """
        let mesh = try Mesh(net: n, o)
        defer { mesh.stop() }
        let zone = mesh.dir + "/zone.json"
        try """
        {"echo.example.test": {"A": ["127.0.\(n).20"], "ttl": 2},
         "secure.example.test": {"A": ["127.0.\(n).20"], "ttl": 60},
         "alias.example.test": {"CNAME": "echo.example.test", "ttl": 60},
         "gone.example.test": {},
         "any.example.test": {"A": ["0.0.0.0"], "AAAA": ["::"]},
         "wide.example.test": {"A": ["127.0.\(n).20"], "truncate": true},
         "busy.example.test": {"A": ["127.0.\(n).20"], "delay": 1.0},
         "short.svc.example.test": {"A": ["127.0.\(n).20"], "ttl": 60},
         "_nxdomain_under": ["corp.example.test", "svc.example.test"]}
        """.write(toFile: zone, atomically: true, encoding: .utf8)
        let upstreamLog = mesh.dir + "/upstream.log"
        try mesh.start("/usr/bin/python3", [repositoryRoot + "/scripts/lib/dns_tool.py", "upstream", "--listen", upstream, "--zone", zone,
                                            "--log", upstreamLog, "--ready", mesh.dir + "/upstream.ready"], log: mesh.dir + "/upstream.err")
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: mesh.dir + "/upstream.ready") })
        func asked(_ line: String) -> Int { mesh.log(upstreamLog).split(separator: "\n").filter { $0.hasSuffix(line) }.count }
        func echo(_ last: Int) throws -> Bool {
            try mesh.client("echo", dest: "127.0.\(n).\(last):443", ["--size", "3000"])["intact"] as? Bool == true
        }

        // 1. Plain TCP to the address the name has; a second connection takes the answer kept
        //    for its TTL, and only the family of the address dialled is asked.
        #expect(try echo(60), "\(mesh.log(mesh.eastLog).suffix(2000))")
        #expect(try echo(60))
        #expect(asked("echo.example.test A") == 1 && asked("echo.example.test AAAA") == 0, "\(mesh.log(upstreamLog))")

        // 2. An HBONE endpoint found by name: the tunnel goes to that address's node proxy and
        //    must meet the workload's identity there.
        #expect(try echo(61), "\(mesh.log(mesh.eastLog).suffix(2000))")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("src.workload=checkout-0") && $0.contains("dst.hbone_addr=127.0.\(n).20:8080") && $0.contains("direction=inbound") },
                "\(mesh.log(mesh.westLog).suffix(2000))")

        // 3. A CNAME chain in the answer is followed.
        #expect(try echo(62))
        #expect(asked("alias.example.test A") == 1)

        // 4. An answer truncated over UDP is asked again over TCP.
        #expect(try echo(67), "\(mesh.log(upstreamLog))")
        #expect(mesh.log(upstreamLog).contains("udp 127.0.0.1 wide.example.test A") && mesh.log(upstreamLog).contains("tcp 127.0.0.1 wide.example.test A"),
                "\(mesh.log(upstreamLog))")

        // 5. Connections that need a name while it is being looked up (the answer takes 1 s) wait
        //    for that one query: four clients at once, one query.
        let clients = try (0..<4).map { _ in try mesh.startClient("echo", dest: "127.0.\(n).68:443", ["--size", "100"]) }
        for c in clients { #expect(try c.result()["intact"] as? Bool == true) }
        #expect(asked("busy.example.test A") == 1, "\(mesh.log(upstreamLog))")

        // 6. No address: NXDOMAIN, and a name with none of either family (both asked, then kept
        //    as absent for the SOA's negative TTL). The client learns the host is unreachable.
        for last in [63, 64, 64] {
            let refused = try mesh.client("expect-fail", dest: "127.0.\(n).\(last):443")
            #expect(refused["failed"] as? Bool == true && "\(refused["error"] ?? "")".contains("reply code 4"), "\(refused)")
        }
        #expect(asked("gone.example.test A") == 1 && asked("gone.example.test AAAA") == 1, "\(mesh.log(upstreamLog))")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("no address for nx.example.test: the name has no address") && $0.contains("error.code=dns_lookup") },
                "\(mesh.log(mesh.eastLog).suffix(3000))")

        // 7. A name that answers 0.0.0.0 (or ::) is not dialled: that reaches this very host.
        let inside = try mesh.client("expect-fail", dest: "127.0.\(n).66:443")
        #expect(inside["failed"] as? Bool == true && "\(inside["error"] ?? "")".contains("reply code 4"), "\(inside)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("no address for any.example.test: it resolves only to 0.0.0.0 or ::") })
        #expect(mesh.metric(admin: mesh.eastAdmin, "hbone_on_demand_dns_failures_total{reason=\"refused_address\"}") == 1)

        // 8. An upstream that never answers: both tries, then the connection fails, counted.
        let started = Date()
        let silent = try mesh.client("expect-fail", dest: "127.0.\(n).65:443")
        #expect(silent["failed"] as? Bool == true && Date().timeIntervalSince(started) >= 2.9, "\(silent)")
        #expect(asked("slow.example.test A") == 2)
        #expect(mesh.metric(admin: mesh.eastAdmin, "hbone_on_demand_dns_failures_total{reason=\"no_answer\"}") == 1)

        // 9. Past its TTL (2 s) the name is asked again.
        usleep(2_300_000)
        #expect(try echo(60))
        #expect(asked("echo.example.test A") == 2, "\(mesh.log(upstreamLog))")

        // 10. ztunnel's series: per connection that needed a lookup, by source and hostname.
        let source = "source_workload=\"checkout-0\",source_canonical_service=\"checkout-0\",source_canonical_revision=\"latest\","
            + "source_workload_namespace=\"payments\",source_principal=\"spiffe://cluster.local/ns/payments/sa/checkout\","
            + "source_app=\"checkout-0\",source_version=\"latest\",source_cluster=\"Kubernetes\""
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_on_demand_dns_total{\(source),hostname=\"echo.example.test\"}") == 3)
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_on_demand_dns_total{\(source),hostname=\"gone.example.test\"}") == 2)

        // 11. A name with fewer dots than ndots is asked with each search domain first, in order,
        //     until one has an address (here the second); it is not asked as it is. Before, the
        //     name was asked only as it is, and found nothing.
        #expect(try echo(69), "\(mesh.log(mesh.eastLog).suffix(2000))\n\(mesh.log(upstreamLog))")
        #expect(asked(" short.corp.example.test A") == 1 && asked(" short.svc.example.test A") == 1 && asked(" short A") == 0,
                "\(mesh.log(upstreamLog))")
        // One with as many is asked as it is first; the search domains only after it had none.
        #expect(asked(" nx.example.test A") == 1 && asked(" nx.example.test.corp.example.test A") == 1
                && asked(" nx.example.test.svc.example.test A") == 1, "\(mesh.log(upstreamLog))")
        #expect(asked(" echo.example.test.corp.example.test A") == 0)
        // NXDOMAIN: the name has nothing of either family, so the other is not asked; NODATA
        // (gone, step 6) asks both.
        #expect(asked(" nx.example.test AAAA") == 0 && asked(" short.corp.example.test AAAA") == 0, "\(mesh.log(upstreamLog))")
        #expect(mesh.waitForLog(mesh.eastLog) {
            $0.contains("(asked as nx.example.test, nx.example.test.corp.example.test, nx.example.test.svc.example.test)")
        }, "\(mesh.log(mesh.eastLog).suffix(3000))")

        // 12. The dump shows the hostname, as ztunnel's does.
        let workloads = mesh.configDump(mesh.eastAdmin)["workloads"] as? [[String: Any]] ?? []
        #expect(workloads.first { $0["uid"] as? String == "ext//api" }?["hostname"] as? String == "echo.example.test", "\(workloads)")
    }
}
