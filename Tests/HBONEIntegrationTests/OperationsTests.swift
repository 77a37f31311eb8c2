import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Metrics, admin, readiness, drain and timeouts of real proxies.
@Suite(.serialized) struct OperationsTests {
    func http(_ url: String, method: String = "GET", metrics: Bool = false) throws -> [String: Any] {
        try runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/http_get.py", url, "--method", method] + (metrics ? ["--metrics"] : []))
    }

    func sample(_ samples: [[String: Any]], _ name: String, _ labels: [String: String]) -> Double? {
        samples.first { s in
            s["name"] as? String == name && labels.allSatisfy { (s["labels"] as? [String: String])?[$0.key] == $0.value }
        }?["value"] as? Double
    }

    /// ztunnel's full label set: canonical service/revision (and app/version) from workload labels,
    /// the destination service's name and namespace; a hostile label value stays one value
    /// (prometheus_client parses it back exactly).
    @Test func istioLabelsAreDerivedAsZtunnelDoesAndEscaped() throws {
        var o = Mesh.Options()
        let net = 113
        o.ledgerExtra = "  labels: {app: ledger-app, version: \"v2 \\\"quoted\\\" \\\\ end\"}\n"
            + "  services: {\"payments/ledger.payments.svc.cluster.local\": {8080: 8080}}"
        o.topLevel = """
        services:
        - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["127.0.\(net).50"], ports: {8080: 8080}}
        """
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(try mesh.client("echo", dest: "ledger.payments.svc.cluster.local:8080", ["--size", "100"])["intact"] as? Bool == true)
        _ = mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") }
        let west = try http("http://\(mesh.westAdmin):15020/metrics", metrics: true)
        #expect(west["samples"] != nil, "prometheus_client could not parse: \(west)")
        let ws = west["samples"] as? [[String: Any]] ?? []
        let labels: [String: String] = [
            "reporter": "destination", "destination_app": "ledger-app", "destination_canonical_service": "ledger-app",
            "destination_version": "v2 \"quoted\" \\ end", "destination_canonical_revision": "v2 \"quoted\" \\ end",
            "source_app": "checkout-0", "source_version": "latest", "source_canonical_service": "checkout-0",
            "source_cluster": "Kubernetes", "destination_cluster": "Kubernetes",
        ]
        #expect(sample(ws, "istio_tcp_connections_opened_total", labels) == 1,
                "\(ws.filter { $0["name"] as? String == "istio_tcp_connections_opened_total" })")
        // The destination's side attributes it to the service too: east names it in `forwarded`.
        let service = ["destination_service": "ledger.payments.svc.cluster.local", "destination_service_name": "ledger",
                       "destination_service_namespace": "payments"]
        #expect(sample(ws, "istio_tcp_connections_opened_total", labels.merging(service) { $1 }) == 1,
                "\(ws.filter { $0["name"] as? String == "istio_tcp_connections_opened_total" })")
        #expect(mesh.log(mesh.westLog).contains("dst.service=ledger.payments.svc.cluster.local"))
        // The client's side knows the service it dialled.
        let es = try http("http://\(mesh.eastAdmin):15020/metrics", metrics: true)["samples"] as? [[String: Any]] ?? []
        var source = labels
        source["reporter"] = "source"
        source["destination_service"] = "ledger.payments.svc.cluster.local"
        source["destination_service_name"] = "ledger"
        source["destination_service_namespace"] = "payments"
        #expect(sample(es, "istio_tcp_connections_opened_total", source) == 1,
                "\(es.filter { $0["name"] as? String == "istio_tcp_connections_opened_total" })")
    }

    /// TCP keepalive on every leg of a long-lived tunnel: the accepted application socket has it
    /// from the listener; outbound sockets (east's pooled HBONE connection, west's connection to the
    /// destination) get it at their loop's first sweep, within about a second of connecting.
    @Test func longLivedConnectionsHaveKeepaliveOnEveryLeg() throws {
        let mesh = try Mesh(net: 74)
        defer { mesh.stop() }
        let holder = try mesh.startClient("hold", ["--size", "4"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}", timeout: 10) { $0 >= 1 })
        Thread.sleep(forTimeInterval: 2.5)    // two sweeps
        func timers(_ filter: [String]) throws -> String {
            try runProgram("/usr/bin/ss", ["-tnoH", "state", "established"] + filter).output
        }
        let app = try timers(["src", mesh.eastSocks])
        let pooled = try timers(["dst", "\(mesh.westIP):15008"])
        let upstream = try timers(["dst", mesh.echo])
        for (leg, out) in [("accepted app socket", app), ("pooled HBONE connection", pooled), ("west to the destination", upstream)] {
            #expect(!out.isEmpty && out.split(separator: "\n").allSatisfy { $0.contains("timer:(keepalive") }, "\(leg): \(out)")
        }
        #expect(try holder.result()["echoed"] as? String == "hi")
    }

    @Test func istioMetricsParseAndCountBothSides() throws {
        let mesh = try Mesh(net: 52)
        defer { mesh.stop() }
        #expect(try mesh.client("echo", ["--size", "5000"])["intact"] as? Bool == true)
        _ = mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") }
        let west = try http("http://\(mesh.westAdmin):15020/metrics", metrics: true)
        let east = try http("http://\(mesh.eastAdmin):15020/stats/prometheus", metrics: true)
        let ws = west["samples"] as? [[String: Any]] ?? [], es = east["samples"] as? [[String: Any]] ?? []
        let checkout = "spiffe://cluster.local/ns/payments/sa/checkout", ledger = "spiffe://cluster.local/ns/payments/sa/ledger"
        let common = ["source_principal": checkout, "destination_principal": ledger, "connection_security_policy": "mutual_tls",
                      "request_protocol": "tcp", "response_flags": "-", "destination_workload_namespace": "payments"]
        #expect(sample(ws, "istio_tcp_connections_opened_total", common.merging(["reporter": "destination"]) { $1 }) == 1)
        #expect(sample(ws, "istio_tcp_connections_closed_total", common.merging(["reporter": "destination"]) { $1 }) == 1)
        #expect(sample(ws, "istio_tcp_received_bytes_total", common.merging(["reporter": "destination"]) { $1 }) == 5000)
        #expect(sample(ws, "istio_tcp_sent_bytes_total", common.merging(["reporter": "destination"]) { $1 }) == 5000)
        #expect(sample(es, "istio_tcp_connections_opened_total", common.merging(["reporter": "source", "source_workload": "checkout-0"]) { $1 }) == 1)
        #expect(sample(es, "istio_build", ["component": "hbone"]) == 1)
        #expect(sample(ws, "hbone_handshakes_total", [:]) ?? 0 >= 1)
        #expect(sample(ws, "hbone_certificate_expiration_timestamp_seconds", ["identity": ledger]) ?? 0 > Date().timeIntervalSince1970)
        #expect(sample(ws, "process_open_fds", [:]) ?? 0 > 0)
        #expect(sample(es, "hbone_pooled_connections", [:]) == 1)
        #expect(sample(ws, "hbone_tunnels_open", ["direction": "inbound"]) == 0)
        #expect(sample(es, "hbone_tunnels_open", ["direction": "outbound"]) == 0)
        #expect(sample(ws, "hbone_hbone_connections", ["direction": "inbound"]) == 1)
    }

    /// istioctl ztunnel-config decodes our dump: checked field by field against the Go structs it
    /// uses (scripts/lib/check_ztunnel_dump.py), with policies that use every kind of match.
    @Test func theConfigDumpDecodesAsIstioctlReadsIt() throws {
        let policies = try policyDirectory("dump-shape")
        try """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: mixed, namespace: payments}
        spec:
          action: ALLOW
          selector: {matchLabels: {app: ledger}}
          rules:
          - from:
            - source: {principals: ["cluster.local/ns/payments/sa/checkout", "*/sa/audit"], namespaces: ["payments"], ipBlocks: ["10.0.0.0/8"]}
            - source: {notPrincipals: ["*"], notIpBlocks: ["192.168.0.0/16"]}
            to:
            - operation: {ports: ["8080"], notPorts: ["9090"]}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-all-9000, namespace: istio-system}
        spec:
          action: DENY
          rules: [{to: [{operation: {ports: ["9000"]}}]}]
        """.write(toFile: policies.path + "/p.yaml", atomically: true, encoding: .utf8)
        var o = Mesh.Options()
        o.westExtra = policies.setting
        o.ledgerExtra = "  waypoint: {destination: \"/127.0.112.40\", hboneMtlsPort: 15009}\n  locality: {region: r1, zone: z1}\n  capacity: 2\n"
        let mesh = try Mesh(net: 112, o)
        defer { mesh.stop() }
        let body = try http("http://\(mesh.westAdmin):15000/config_dump")["body"] as? String ?? ""
        let checker = Process()
        checker.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        checker.arguments = [repositoryRoot + "/scripts/lib/check_ztunnel_dump.py"]
        let input = Pipe(), output = Pipe()
        checker.standardInput = input
        checker.standardOutput = output
        try checker.run()
        input.fileHandleForWriting.write(Data(body.utf8))
        try input.fileHandleForWriting.close()
        let verdict = try JSONSerialization.jsonObject(with: output.fileHandleForReading.readDataToEndOfFile()) as? [String: Any]
        checker.waitUntilExit()
        #expect(verdict?["ok"] as? Bool == true, "\(String(describing: verdict?["errors"]))")
        let dump = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
        let mixed = (dump["policies"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "mixed" }
        #expect(mixed?["scope"] as? String == "WorkloadSelector" && mixed?["action"] as? String == "Allow")   // ztunnel's names
        let rules = mixed?["rules"] as? [[[[String: Any]]]] ?? []
        #expect(rules.count == 1 && rules[0].count >= 1, "\(String(describing: mixed?["rules"]))")
        let principals = rules.first?.first?.first?["principals"] as? [[String: String]] ?? []
        #expect(principals.contains { $0["Exact"] != nil } && principals.contains { $0["Suffix"] != nil } || principals.contains { $0["Prefix"] != nil }, "\(principals)")
        let ledger = (dump["workloads"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "ledger-0" }
        let waypoint = ledger?["waypoint"] as? [String: Any]
        #expect(waypoint?["destination"] as? String == "/127.0.112.40" && waypoint?["hboneMtlsPort"] as? Int == 15009, "\(String(describing: waypoint))")
        let locality = ledger?["locality"] as? [String: String]
        #expect(locality == ["region": "r1", "zone": "z1", "subzone": ""], "\(String(describing: locality))")
        #expect(ledger?["capacity"] as? Int == 2 && ledger?["status"] as? String == "Healthy")
    }

    @Test func rejectedReloadsAreCountedAndAnUnchangedFileIsNotParsedAgain() throws {
        let mesh = try Mesh(net: 117)
        defer { mesh.stop() }
        let west = mesh.dir + "/west.yaml"
        let text = try String(contentsOfFile: west, encoding: .utf8)
        // Same bytes, new mtime: the watcher reloads (certificates are read again), the file is not parsed again.
        Thread.sleep(forTimeInterval: 1.1)
        try text.write(toFile: west, atomically: true, encoding: .utf8)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("configuration applied version=2") }, "\(mesh.log(mesh.westLog))")
        #expect(mesh.metric(admin: mesh.westAdmin, "hbone_config_reparses_total") == 0)
        // A broken file: refused, counted, and the reason is in the dump.
        try (text + "\nbogus: [").write(toFile: west, atomically: true, encoding: .utf8)
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_config_reload_failures_total") { $0 == 1 })
        let failure = try JSONSerialization.jsonObject(with: Data((try http("http://\(mesh.westAdmin):15000/config_dump")["body"] as? String ?? "{}").utf8))
            as? [String: Any]
        let reason = (failure?["lastReloadFailure"] as? [String: Any])?["reason"] as? String ?? ""
        #expect(reason.contains("west.yaml") && reason.contains("YAML"), "\(reason)")
        // The tunnel still works on the last good config.
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
        // A new local workload whose address this node cannot bind (another process holds its
        // :15008): applied, its listener's failure logged and counted per worker, the other
        // listeners untouched.
        let holder = listeningSocket("127.0.117.30", 15008)
        defer { close(holder) }
        #expect(holder >= 0)
        let unbindable = text.replacingOccurrences(of: "- uid: east//checkout-0", with: """
        - uid: west//ledger-1
          name: ledger-1
          namespace: payments
          serviceAccount: ledger
          workloadIps: ["127.0.117.30"]
          protocol: HBONE
          node: west
        - uid: east//checkout-0
        """)
        try unbindable.write(toFile: west, atomically: true, encoding: .utf8)
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_accept_failures_total{reason=\"listen\"}") { $0 == 2 })
        #expect(mesh.log(mesh.westLog).contains("cannot listen address=127.0.117.30:15008"), "\(mesh.log(mesh.westLog).suffix(1500))")
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
    }

    @Test func adminEndpoints() throws {
        let mesh = try Mesh(net: 53)
        defer { mesh.stop() }
        let base = "http://\(mesh.westAdmin):15000"
        let dump = try http(base + "/config_dump")
        #expect(dump["status"] as? Int == 200)
        let json = try JSONSerialization.jsonObject(with: Data((dump["body"] as? String ?? "{}").utf8)) as? [String: Any] ?? [:]
        let certs = json["certificates"] as? [[String: Any]] ?? []
        #expect(certs.first?["identity"] as? String == "spiffe://cluster.local/ns/payments/sa/ledger")
        #expect(certs.first?["state"] as? String == "Available")
        let chain = certs.first?["certChain"] as? [[String: Any]] ?? []
        #expect(chain.count == 2)
        // Decimal, as ztunnel prints serials (istioctl shows them as is).
        let serialNumber = chain.first?["serialNumber"] as? String ?? ""
        #expect(!serialNumber.isEmpty && serialNumber.allSatisfy { $0.isNumber })
        #expect((chain.first?["pem"] as? String ?? "").hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(chain.first?["expirationTime"] as? String != nil)
        #expect((certs.first?["rootCerts"] as? [[String: Any]])?.count == 1)
        #expect((json["workloads"] as? [[String: Any]])?.count == 2)
        #expect(try http(base + "/quitquitquit")["status"] as? Int == 405)
        #expect(try http(base + "/config_dump", method: "POST")["status"] as? Int == 405)
        #expect(try http(base + "/nope")["status"] as? Int == 404)
        #expect(try http(base + "/logging?level=loud", method: "POST")["status"] as? Int == 400)
        #expect(try http(base + "/logging?level=debug", method: "POST")["status"] as? Int == 200)
        // No level: the current ones; per scope as ztunnel takes them; a bad scope changes nothing.
        #expect(try http(base + "/logging", method: "POST")["body"] as? String == "levels: hbone:debug,access:debug\n")
        let scoped = try http(base + "/logging?level=hbone:info,access:off", method: "POST")
        #expect(scoped["status"] as? Int == 200 && scoped["body"] as? String == "levels: hbone:info,access:off\n", "\(scoped)")
        #expect(try http(base + "/logging?level=nope:debug", method: "POST")["status"] as? Int == 400)
        #expect(try http(base + "/logging", method: "POST")["body"] as? String == "levels: hbone:info,access:off\n")
        // access:off: a finished connection writes no access line, other lines still appear.
        let before = mesh.log(mesh.westLog).components(separatedBy: "connection complete").count
        _ = try mesh.client("echo", ["--size", "100"])
        Thread.sleep(forTimeInterval: 0.3)
        #expect(mesh.log(mesh.westLog).components(separatedBy: "connection complete").count == before)
        _ = try http(base + "/logging?level=info", method: "POST")
        let stats = try http(base + "/stats")["body"] as? String ?? ""
        #expect(stats.contains("tunnels_opened_inbound: ") && stats.contains("log_lines_dropped: 0"), "\(stats)")
        let memory = try JSONSerialization.jsonObject(with: Data((try http(base + "/memory")["body"] as? String ?? "{}").utf8)) as? [String: Any]
        // A sanitizer's allocator hides the heap from mallinfo2 (0 there); the field is present either way.
        let sanitized = ProcessInfo.processInfo.environment["HBONE_SANITIZED"] != nil
        #expect(memory?["heap_in_use_bytes"] is Int && ((memory?["heap_in_use_bytes"] as? Int ?? 0) > 0 || sanitized), "\(String(describing: memory))")
        #expect((memory?["resident_bytes"] as? Int ?? 0) > 0, "\(String(describing: memory))")
        #expect(try http("http://\(mesh.westAdmin):15021/healthz/ready")["status"] as? Int == 200)
        #expect(try http("http://\(mesh.westAdmin):15021/config_dump")["status"] as? Int == 404)

        // An endpoint that answers something else: which one, and what it said; exit 1, no usage.
        let (wrongStatus, wrong) = try runProgram(mesh.binary, ["admin", "certs", "--admin", "\(mesh.westAdmin):15020"], includeErrors: true)
        #expect(wrongStatus == 1 && wrong.contains("GET /config_dump at \(mesh.westAdmin):15020 answered 404") && !wrong.contains("USAGE"), "\(wrong)")

        // hbone admin prints readable tables from the same API.
        func admin(_ what: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mesh.binary)
            p.arguments = ["admin", what, "--admin", "\(mesh.westAdmin):15000"]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return String(decoding: data, as: UTF8.self)
        }
        let certTable = try admin("certs")
        #expect(certTable.hasPrefix("IDENTITY"))
        #expect(certTable.contains("spiffe://cluster.local/ns/payments/sa/ledger  Available"))
        let workloads = try admin("workloads")
        #expect(workloads.contains("west  payments   ledger-0") && workloads.contains("yes"))
        #expect(try admin("policies").hasPrefix("NAMESPACE"))
        #expect(try admin("config").contains("\"node\" : \"west\""))
    }

    @Test func readinessNamesTheMissingCertificate() throws {
        var o = Mesh.Options()
        o.westCertificates = "certs-east"      // no ledger SVID there
        let mesh = try Mesh(net: 54, o)
        defer { mesh.stop() }
        let r = try http("http://\(mesh.westAdmin):15021/healthz/ready")
        #expect(r["status"] as? Int == 500)
        #expect((r["body"] as? String ?? "").contains("spiffe://cluster.local/ns/payments/sa/ledger"))
    }

    @Test func deniedConnectionsCarryTheDenyFlag() throws {
        var o = Mesh.Options()
        o.westPolicies = "policies:\n- name: deny-all\n  namespace: payments\n  action: Deny\n  rules:\n  - []"
        let mesh = try Mesh(net: 55, o)
        defer { mesh.stop() }
        #expect(try mesh.client("expect-fail")["failed"] as? Bool == true)
        let samples = try http("http://\(mesh.westAdmin):15020/metrics", metrics: true)["samples"] as? [[String: Any]] ?? []
        #expect(sample(samples, "istio_tcp_connections_failed_total", ["reporter": "destination", "response_flags": "DENY"]) == 1)
    }

    @Test func drainLetsAShortTransferFinish() throws {
        let mesh = try Mesh(net: 56)
        defer { mesh.stop() }
        let client = try mesh.startClient("slowecho", ["--count", "10"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}") { $0 >= 1 })
        // quitquitquit on west: stop accepting, GOAWAY, drain (default 5 s) — the 1 s transfer fits.
        #expect(try http("http://\(mesh.westAdmin):15000/quitquitquit", method: "POST")["status"] as? Int == 200)
        let r = try client.result()
        #expect(r["intact"] as? Bool == true, "\(r)")
        let west = mesh.processes[1]
        west.waitUntilExit()
        #expect(west.terminationStatus == 0)
        #expect(mesh.log(mesh.westLog).contains("GOAWAY") || mesh.log(mesh.westLog).contains("draining"))
    }

    @Test func drainCutsALongTunnelAtTheDeadline() throws {
        var o = Mesh.Options()
        o.westExtra = "  timeouts:\n    drain: 1500ms"
        let mesh = try Mesh(net: 57, o)
        defer { mesh.stop() }
        let client = try mesh.startClient("hold", ["--size", "20"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}") { $0 >= 1 })
        let west = mesh.processes[1]
        let start = Date()
        kill(west.processIdentifier, SIGTERM)
        west.waitUntilExit()
        let took = Date().timeIntervalSince(start)
        #expect(west.terminationStatus == 0)
        #expect(took >= 1.4 && took < 4, "west exited after \(took) s")
        let r = try client.result()
        #expect(r["closed_by_peer"] as? Bool == true, "\(r)")
        #expect(mesh.log(mesh.westLog).contains("drain deadline reached"))
    }

    /// Metrics and readiness listen on every interface. Idle connections to one of them are held at
    /// most 256 at a time; one more is reset at once and counted, and the other admin ports, the
    /// data plane and a scrape once the flood is gone all still answer.
    @Test func aFloodOfIdleConnectionsToOneAdminPortIsBounded() throws {
        let mesh = try Mesh(net: 119, Mesh.Options())
        defer { mesh.stop() }
        func open(_ port: UInt16) -> Int32 {
            let fd = connectedSocket(mesh.westAdmin, port)
            #expect(fd >= 0)
            return fd
        }
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<256 { held.append(open(15020)) }
        #expect(mesh.readiness(mesh.westAdmin).status == 200)   // the 256 are accepted: the loop answered after them
        let extra = open(15020)
        defer { close(extra) }
        let start = Date()
        var byte: UInt8 = 0
        let n = recv(extra, &byte, 1, 0)
        let e = errno
        let took = Date().timeIntervalSince(start)
        #expect((n == 0 || (n < 0 && e == ECONNRESET)) && took < 2, "n \(n) errno \(e) after \(took) s")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("admin connection refused: too many open on its port") })
        // The other ports and the data plane are untouched.
        #expect(mesh.readiness(mesh.westAdmin).status == 200)
        #expect((try http("http://\(mesh.westAdmin):15000/stats")["body"] as? String ?? "").contains("admin_connections_refused: 1"))
        #expect(try mesh.client("echo", ["--size", "1000"])["intact"] as? Bool == true)
        // The flood gone, the port serves again; the count is a counter prometheus_client reads.
        held.forEach { close($0) }
        held = []
        #expect(waitUntil(timeout: 5) {
            let m = try? http("http://\(mesh.westAdmin):15020/metrics", metrics: true)
            return (m?["samples"] as? [[String: Any]]).flatMap { sample($0, "hbone_admin_connections_refused_total", [:]) } ?? 0 >= 1
        })
    }

    @Test func handshakeAndIdleTimeouts() throws {
        var o = Mesh.Options()
        o.westExtra = "  timeouts:\n    handshake: 1s\n    idle: 1s"
        let mesh = try Mesh(net: 58, o)
        defer { mesh.stop() }
        // A client that connects and sends nothing is dropped (the reference has no such timeout).
        let fd = connectedSocket(mesh.westIP, 15008)
        defer { close(fd) }
        #expect(fd >= 0)
        let start = Date()
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        let took = Date().timeIntervalSince(start)
        #expect(n <= 0, "server sent data to a silent client")
        #expect(took >= 0.8 && took < 3, "dropped after \(took) s")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("TLS handshake timed out") })

        // An idle tunnel is closed by the idle timeout.
        let r = try mesh.client("hold", ["--size", "10"])
        #expect(r["closed_by_peer"] as? Bool == true, "\(r)")
        #expect((r["after"] as? Double ?? 99) < 4)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("idle for longer than") })
    }

    @Test func keepalivePingUnansweredClosesTheConnection() throws {
        var o = Mesh.Options()
        o.westExtra = "  timeouts:\n    keepaliveInterval: 1s\n    keepaliveTimeout: 1s"
        let mesh = try Mesh(net: 59, o)
        defer { mesh.stop() }
        let r = try runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/h2_interop.py", "silent", "--connect", "\(mesh.westIP):15008",
                                                 "--cert-dir", TestPKI.path("certs-east/payments/checkout"), "--ca", TestPKI.path("bundle-root.pem"), "--message", "4"])
        #expect(r["closed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("keepalive PING unanswered") })
    }

    @Test func upstreamConnectTimeoutAnswers503() throws {
        var o = Mesh.Options()
        o.westExtra = "  timeouts:\n    connect: 1s"
        let mesh = try Mesh(net: 60, o)
        defer { mesh.stop() }
        // A listener with a full accept queue: further SYNs are dropped, so connects hang.
        let fd = listeningSocket(mesh.westIP, 8444, backlog: 0)
        defer { close(fd) }
        #expect(fd >= 0)
        var fillers: [Int32] = []
        for _ in 0..<4 {
            let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withIPv4Address(mesh.westIP, 8444) { connect(c, $0, $1) }
            fillers.append(c)
        }
        defer { fillers.forEach { close($0) } }
        // The queue is full once a filler's handshake completed (it turns writable).
        #expect(waitUntil(timeout: 2) {
            var fds = fillers.map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) }
            return poll(&fds, nfds_t(fds.count), 0) > 0
        })
        let start = Date()
        let r = try mesh.client("expect-fail", dest: "\(mesh.westIP):8444")
        let took = Date().timeIntervalSince(start)
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(took >= 0.8 && took < 5, "took \(took) s")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("503: upstream connect to \(mesh.westIP):8444 timed out") })
    }
}
