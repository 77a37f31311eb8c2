import Foundation
import Testing
import HBONETestSupport

/// Our proxy against an independent HTTP/2 + TLS stack (Python h2 and ssl), both directions.
@Suite(.serialized) struct InteropTests {
    let python = "/usr/bin/python3"
    let script = repositoryRoot + "/scripts/lib/h2_interop.py"

    func pythonClient(_ mesh: Mesh, authority: String, method: String = "CONNECT", _ extra: [String] = []) throws -> [String: Any] {
        try runJSON(python, [script, "client", "--connect", "\(mesh.westIP):15008", "--cert-dir", TestPKI.path("certs-east/payments/checkout"),
                             "--ca", TestPKI.path("bundle-root.pem"), "--authority", authority, "--method", method] + extra)
    }

    /// The Python HBONE server on 127.0.NET.HOST:15008 (by default in place of west); returns it and
    /// its record file.
    func pythonServer(net: Int, host: Int = 20, _ extra: [String] = []) throws -> (process: Process, record: String) {
        let dir = NSTemporaryDirectory() + "hbone-interop-\(net)-\(host)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let record = dir + "/record.jsonl"
        let server = Process()
        server.executableURL = URL(fileURLWithPath: python)
        server.arguments = [script, "server", "--listen", "127.0.\(net).\(host):15008", "--cert-dir", TestPKI.path("certs-west/payments/ledger"),
                            "--ca", TestPKI.path("bundle-root.pem"), "--record", record, "--ready", dir + "/ready"] + extra
        try server.run()
        return (server, record)
    }

    @Test func pythonH2ClientTunnelsThroughOurInbound() throws {
        let mesh = try Mesh(net: 61)
        defer { mesh.stop() }
        let r = try pythonClient(mesh, authority: mesh.echo)
        #expect(r["alpn"] as? String == "h2")
        #expect(r["status"] as? Int == 200)
        #expect(r["echoed"] as? String == "hello from python h2")
        #expect((r["peer_san"] as? [String]) == ["spiffe://cluster.local/ns/payments/sa/ledger"])
        // The 200 says who answered (ztunnel's response baggage).
        #expect((r["response_headers"] as? [String: String])?["baggage"]
                == "k8s.cluster.name=Kubernetes,k8s.namespace.name=payments,k8s.deployment.name=ledger-0,service.name=ledger-0,service.version=latest", "\(r)")
    }

    /// A client west cannot look up (this one connects from 127.0.0.1) is named in the metrics by
    /// its baggage, unless the baggage claims a namespace its certificate does not have.
    @Test func anUnknownClientIsNamedByItsBaggageWithinItsOwnNamespace() throws {
        let mesh = try Mesh(net: 133)
        defer { mesh.stop() }
        let honest = try pythonClient(mesh, authority: mesh.echo, ["--header", "baggage=k8s.cluster.name=far,k8s.namespace.name=payments,k8s.job.name=nightly,service.name=billing-batch,service.version=v7"])
        #expect(honest["status"] as? Int == 200, "\(honest)")
        let lying = try pythonClient(mesh, authority: mesh.echo, ["--header", "baggage=k8s.namespace.name=kube-system,k8s.deployment.name=coredns"])
        #expect(lying["status"] as? Int == 200, "\(lying)")
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_untrusted_attribution_total{header=\"baggage\"}") { $0 == 1 })
        let (_, text) = try runProgram("/usr/bin/curl", ["-s", "http://\(mesh.westAdmin):15020/metrics"])
        let opened = text.split(separator: "\n").filter { $0.hasPrefix("istio_tcp_connections_opened_total{") }
        #expect(opened.contains { $0.contains("source_workload=\"nightly\"") && $0.contains("source_cluster=\"far\"")
            && $0.contains("source_canonical_service=\"billing-batch\"") && $0.contains("source_canonical_revision=\"v7\"")
            && $0.contains("source_principal=\"spiffe://cluster.local/ns/payments/sa/checkout\"") }, "\(opened)")
        #expect(!text.contains("coredns") && !text.contains("source_workload_namespace=\"kube-system\""), "\(opened)")
        // The access log names the clusters as the metrics do (the client's from its baggage, the
        // destination's from west's workload), and ignores the lying client's namespace claim.
        #expect(mesh.waitForLog(mesh.westLog) { log in
            log.split(separator: "\n").contains { $0.contains("connection complete") && $0.contains("src.cluster=far") && $0.contains("dst.cluster=Kubernetes") }
        }, "\(mesh.log(mesh.westLog).suffix(2000))")
        #expect(mesh.waitForLog(mesh.westLog) { log in
            log.split(separator: "\n").filter { $0.contains("connection complete") && $0.contains("src.cluster=unknown") && $0.contains("dst.cluster=Kubernetes") }.count == 1
        }, "\(mesh.log(mesh.westLog).suffix(2000))")
    }

    /// What peers say of themselves in baggage makes at most `maxBaggageSeries` series: a client
    /// naming a new workload on every connection would otherwise grow west's memory and every
    /// scrape for as long as it runs. Past the bound the connections still pass, counted on the
    /// series of what west knows itself (the client's verified identity and namespace).
    @Test func baggageNamesAtMostTheBoundsSeries() throws {
        var o = Mesh.Options()
        o.westExtra = "  maxBaggageSeries: 2"
        let mesh = try Mesh(net: 136, o)
        defer { mesh.stop() }
        for i in 1...5 {
            let r = try pythonClient(mesh, authority: mesh.echo, ["--header", "baggage=k8s.namespace.name=payments,k8s.deployment.name=flood-\(i % 4),service.version=v\(i % 4)"])
            #expect(r["status"] as? Int == 200 && r["echoed"] as? String == "hello from python h2", "\(r)")
        }
        // flood-1 and flood-2 took the two places; flood-1 came again (its series, no new place);
        // flood-3 and flood-0 were refused.
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_baggage_series_refused_total") { $0 == 2 })
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_baggage_series") { $0 == 2 })
        let (_, text) = try runProgram("/usr/bin/curl", ["-s", "http://\(mesh.westAdmin):15020/metrics"])
        let opened = text.split(separator: "\n").filter { $0.hasPrefix("istio_tcp_connections_opened_total{") }
        func count(_ workload: String) -> Int? {
            opened.first { $0.contains("source_workload=\"\(workload)\"") && $0.contains("source_principal=\"spiffe://cluster.local/ns/payments/sa/checkout\"") }
                .flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
        }
        #expect(count("flood-1") == 2 && count("flood-2") == 1, "\(opened)")
        #expect(!text.contains("flood-3") && !text.contains("flood-0"), "\(opened)")
        #expect(opened.contains { $0.contains("source_workload=\"unknown\"") && $0.contains("source_workload_namespace=\"payments\"")
            && $0.contains("source_principal=\"spiffe://cluster.local/ns/payments/sa/checkout\"") && $0.hasSuffix(" 2") }, "\(opened)")
    }

    /// A client may send before our 200 (optimistic data, bounded by our stream window): the bytes
    /// and the END_STREAM reach the workload once it is connected, whether they came in the
    /// CONNECT's own TLS record or in the next. In the CONNECT's own record they were dropped
    /// before, and the tunnel hung until the client gave up.
    @Test(arguments: ["together", "after"])
    func pythonH2ClientSendingBeforeThe200IsEchoedInFull(_ when: String) throws {
        let mesh = try Mesh(net: when == "together" ? 75 : 76)
        defer { mesh.stop() }
        let r = try pythonClient(mesh, authority: mesh.echo, ["--optimistic", when])
        #expect(r["status"] as? Int == 200, "\(r)")
        #expect(r["echoed"] as? String == "hello from python h2", "\(r)")
    }

    @Test func pythonH2ClientGetsTheReferenceErrorStatuses() throws {
        let mesh = try Mesh(net: 62)
        defer { mesh.stop() }
        #expect(try pythonClient(mesh, authority: "not-an-address").first { $0.key == "status" }?.value as? Int == 400)
        #expect(try pythonClient(mesh, authority: "\(mesh.westIP)").first { $0.key == "status" }?.value as? Int == 400)
        #expect(try pythonClient(mesh, authority: mesh.echo, method: "GET").first { $0.key == "status" }?.value as? Int == 400)
        #expect(try pythonClient(mesh, authority: "127.0.62.99:8080").first { $0.key == "status" }?.value as? Int == 503)
        #expect(try pythonClient(mesh, authority: "\(mesh.westIP):8999").first { $0.key == "status" }?.value as? Int == 503)
        #expect(try pythonClient(mesh, authority: "\(mesh.westIP):15008").first { $0.key == "status" }?.value as? Int == 400)
    }

    /// What an east-west gateway forwards from another network (ztunnel's double HBONE, the inner
    /// CONNECT): the service by hostname and port, and the client's network. West reaches its
    /// endpoint on the port the service maps to and names the service in its log; the client's
    /// addresses belong to its own network, so a `for=` claim that would name east's workload
    /// here is not taken.
    @Test func aConnectNamingAServiceFromAnotherNetworkReachesItsEndpoint() throws {
        let net = 122
        var o = Mesh.Options()
        o.ledgerExtra = "  services: {\"payments/ledger.payments.svc.cluster.local\": {80: 8080}}\n"
        o.topLevel = """
        services:
        - name: ledger
          namespace: payments
          hostname: ledger.payments.svc.cluster.local
          vips: ["127.0.\(net).90"]
          ports: {"80": 8080, "81": 8081}
        """
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        let claim = "forwarded=for=\"\(mesh.eastIP):40000\""
        let r = try pythonClient(mesh, authority: "ledger.payments.svc.cluster.local:80", ["--header", "x-istio-origin-network=net-b", "--header", claim])
        #expect(r["status"] as? Int == 200, "\(r)")
        #expect(r["echoed"] as? String == "hello from python h2", "\(r)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") })
        let line = mesh.log(mesh.westLog).split(separator: "\n").first { $0.contains("connection complete") }.map(String.init) ?? ""
        #expect(line.contains("dst.addr=\(mesh.westIP):15008 dst.hbone_addr=ledger.payments.svc.cluster.local:80") && line.contains("dst.service=ledger.payments.svc.cluster.local"), "\(line)")
        #expect(line.contains("src.workload=unknown") && !line.contains("src.addr=\(mesh.eastIP)"), "\(line)")
        // On this network the same claim is believed: checkout-0 holds the client's identity.
        let same = try pythonClient(mesh, authority: "ledger.payments.svc.cluster.local:80", ["--header", claim])
        #expect(same["status"] as? Int == 200, "\(same)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") && $0.contains("src.workload=checkout-0") })
        // A service west does not know; a port the service lacks; one whose workload is not listening.
        #expect(try pythonClient(mesh, authority: "reports.payments.svc.cluster.local:80")["status"] as? Int == 503)
        #expect(try pythonClient(mesh, authority: "ledger.payments.svc.cluster.local:99")["status"] as? Int == 400)
        #expect(try pythonClient(mesh, authority: "ledger.payments.svc.cluster.local:81")["status"] as? Int == 503)
    }

    /// The Python east-west gateway of `net-b` on 127.0.NET.30:15009 (with the gateway's SVID),
    /// sending each of `routes` (`hostname:port`) to ledger-0's :15008; returns it and its record file.
    static func startGateway(net: Int, routes: [String]) throws -> (process: Process, record: String) {
        let dir = NSTemporaryDirectory() + "hbone-gateway-\(net)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let record = dir + "/record.jsonl"
        let gateway = Process()
        gateway.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        gateway.arguments = [repositoryRoot + "/scripts/lib/h2_interop.py", "gateway", "--listen", "127.0.\(net).30:15009",
                             "--cert-dir", TestPKI.path("certs-gateway/istio-system/istio-eastwestgateway"),
                             "--ca", TestPKI.path("bundle-root.pem"), "--record", record, "--ready", dir + "/ready"]
            + routes.flatMap { ["--route", "\($0)=127.0.\(net).20:15008"] }
        try gateway.run()
        return (gateway, record)
    }

    /// Double HBONE: east (the default network) reaches ledger, whose only endpoint is on
    /// west's network `net-b`, through `net-b`'s east-west gateway, an independent HBONE stack
    /// (Python h2 and ssl) that routes on the outer CONNECT's authority and relays the inner
    /// tunnel's bytes to west's :15008 without opening them. The inner mTLS runs from east to
    /// west end to end: west sees checkout's identity, and east checks ledger's identity itself
    /// (the gateway cannot stand in for the endpoint).
    @Test func aServiceOnAnotherNetworkIsReachedThroughItsEastWestGateway() throws {
        let net = 123
        let gatewayAddress = "127.0.\(net).30:15009"
        let (gateway, record) = try Self.startGateway(net: net, routes: ["ledger.payments.svc.cluster.local:80", "impostor.payments.svc.cluster.local:80"])
        defer { kill(gateway.processIdentifier, SIGKILL); gateway.waitUntilExit() }
        // istiod's shape: per service and remote network a workload without an address naming
        // the gateway, and the gateway's own workload at that address.
        func behindGateway(_ name: String, gateway: Int = 30) -> String {
            """
            - uid: net-b/\(name)-behind-gateway
              name: \(name)-behind-gateway
              namespace: payments
              network: net-b
              protocol: HBONE
              networkGateway: {destination: "net-b/127.0.\(net).\(gateway)", hboneMtlsPort: 15009}
              services: {"payments/\(name).payments.svc.cluster.local": {80: 8080}}

            """
        }
        func service(_ name: String, vip: Int, san: String) -> String {
            """
            - name: \(name)
              namespace: payments
              hostname: \(name).payments.svc.cluster.local
              vips: ["/127.0.\(net).\(vip)", "net-b/127.0.\(net).\(vip)"]
              ports: {"80": 8080}
              subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/\(san)"]

            """
        }
        var o = Mesh.Options()
        o.ledgerExtra = "  network: net-b\n  services: {\"payments/ledger.payments.svc.cluster.local\": {80: 8080}, \"payments/impostor.payments.svc.cluster.local\": {80: 8080}}\n"
        o.westExtra = "  network: net-b"
        o.eastWorkers = 1   // one pool, so one pooled connection to the gateway
        o.topLevel = behindGateway("ledger") + behindGateway("impostor") + behindGateway("reports") + behindGateway("archive", gateway: 31) + """
        - uid: net-b/eastwest
          name: eastwest
          namespace: istio-system
          serviceAccount: istio-eastwestgateway
          workloadIps: ["127.0.\(net).30"]
          network: net-b
          protocol: HBONE
        - uid: net-b/eastwest-down
          name: eastwest-down
          namespace: istio-system
          serviceAccount: istio-eastwestgateway
          workloadIps: ["127.0.\(net).31"]
          network: net-b
          protocol: HBONE
        services:

        """ + service("ledger", vip: 90, san: "ledger") + service("impostor", vip: 91, san: "audit") + service("reports", vip: 92, san: "reports")
            + service("archive", vip: 93, san: "archive")
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitForPort("127.0.\(net).30", 15009))

        let r = try mesh.client("echo", dest: "127.0.\(net).90:80", ["--size", "300000"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        // The gateway saw east's workload and one CONNECT naming the service, without the origin network.
        let seen = ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let outer = seen.first { ($0["headers"] as? [String: String])?[":authority"] == "ledger.payments.svc.cluster.local:80" }
        #expect(outer?["client_san"] as? [String] == ["spiffe://cluster.local/ns/payments/sa/checkout"], "\(seen)")
        #expect((outer?["headers"] as? [String: String])?["x-istio-origin-network"] == nil, "\(seen)")
        #expect((outer?["headers"] as? [String: String])?["baggage"]?.contains("k8s.deployment.name=checkout-0") == true, "\(seen)")
        // West took the inner CONNECT from checkout (end-to-end mTLS), from another network.
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") })
        let inbound = mesh.log(mesh.westLog).split(separator: "\n").first { $0.contains("connection complete") }.map(String.init) ?? ""
        #expect(inbound.contains("src.identity=spiffe://cluster.local/ns/payments/sa/checkout") && inbound.contains("src.workload=unknown")
                && inbound.contains("dst.hbone_addr=ledger.payments.svc.cluster.local:80") && inbound.contains("dst.workload=ledger-0"), "\(inbound)")
        // East logged one connection (the leg to the gateway is not a connection of its own): to
        // the gateway, naming the service, with ledger's identity from the inner handshake.
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("connection complete") })
        let outbound = mesh.log(mesh.eastLog).split(separator: "\n").filter { $0.contains("connection complete") }
        #expect(outbound.count == 1, "\(outbound)")
        #expect(outbound.first.map { $0.contains("dst.addr=\(gatewayAddress) dst.hbone_addr=ledger.payments.svc.cluster.local:80")
            && $0.contains("dst.identity=spiffe://cluster.local/ns/payments/sa/ledger") && $0.contains("dst.workload=eastwest")
            && $0.contains("dst.service=ledger.payments.svc.cluster.local") && !$0.contains("error") } == true, "\(outbound)")
        // Each side names the other in its metrics from the baggage it sent (ztunnel's enhanced
        // baggage): west cannot look a client on another network up, and east knows only istiod's
        // stand-in for the endpoints behind the gateway.
        func series(_ admin: String, _ reporter: String, _ labels: [String]) -> Bool {
            let (_, text) = (try? runProgram("/usr/bin/curl", ["-s", "http://\(admin):15020/metrics"])) ?? (1, "")
            return text.split(separator: "\n").contains { line in
                line.hasPrefix("istio_tcp_connections_opened_total{") && line.contains("reporter=\"\(reporter)\"") && labels.allSatisfy { line.contains($0) }
            }
        }
        #expect(series(mesh.westAdmin, "destination", ["source_workload=\"checkout-0\"", "source_canonical_service=\"checkout-0\"",
                                                        "source_cluster=\"Kubernetes\"", "source_workload_namespace=\"payments\""]))
        #expect(series(mesh.eastAdmin, "source", ["destination_workload=\"ledger-0\"", "destination_canonical_service=\"ledger-0\"",
                                                  "destination_cluster=\"Kubernetes\"", "destination_service=\"ledger.payments.svc.cluster.local\""]))
        // The inner connection closed with its tunnel; the pooled one to the gateway stays.
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_hbone_connections{direction=\"outbound\"}") { $0 == 1 })
        #expect(mesh.metric(admin: mesh.eastAdmin, "hbone_tunnels_open{direction=\"outbound\"}") == 0)

        // The gateway routes "impostor" to ledger's pod, but the service's names say audit: east
        // refuses the inner handshake, whatever the gateway did.
        let impostor = try mesh.client("expect-fail", dest: "127.0.\(net).91:80")
        #expect(impostor["failed"] as? Bool == true, "\(impostor)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("dst.hbone_addr=impostor.payments.svc.cluster.local:80") && $0.contains("error.code=tls") })
        // No route at the gateway: its 503 is the reason east gives.
        let reports = try mesh.client("expect-fail", dest: "127.0.\(net).92:80")
        #expect(reports["failed"] as? Bool == true, "\(reports)")
        #expect(mesh.waitForLog(mesh.eastLog) {
            $0.contains("dst.hbone_addr=reports.payments.svc.cluster.local:80") && $0.contains("network gateway \(gatewayAddress): destination proxy answered 503")
        }, "\(mesh.log(mesh.eastLog).suffix(1500))")
        // A gateway nobody listens at: the refused connect is the reason.
        let archive = try mesh.client("expect-fail", dest: "127.0.\(net).93:80")
        #expect(archive["failed"] as? Bool == true, "\(archive)")
        #expect(mesh.waitForLog(mesh.eastLog) {
            $0.contains("dst.hbone_addr=archive.payments.svc.cluster.local:80") && $0.contains("network gateway 127.0.\(net).31:15009: connect to")
        }, "\(mesh.log(mesh.eastLog).suffix(1500))")
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_hbone_connections{direction=\"outbound\"}") { $0 == 1 })
        #expect(mesh.metric(admin: mesh.eastAdmin, "hbone_tunnels_open{direction=\"outbound\"}") == 0)
    }

    @Test func ourOutboundTunnelsThroughAPythonH2Server() throws {
        // West is a Python HBONE server instead of hbone; east must interoperate with it.
        let net = 63
        let (server, record) = try pythonServer(net: net)
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let mesh = try Mesh(net: net, eastOnly: true)
        defer { mesh.stop() }
        #expect(waitForPort("127.0.\(net).20", 15008))
        let r = try mesh.client("echo", ["--size", "100000"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        let lines = (try? String(contentsOfFile: record, encoding: .utf8))?.split(separator: "\n") ?? []
        guard let first = lines.first(where: { $0.contains("shape_ok") }), let obj = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any] else {
            Issue.record("the Python server recorded nothing")
            return
        }
        #expect(obj["shape_ok"] as? Bool == true)
        #expect(obj["alpn"] as? String == "h2")
        #expect((obj["client_san"] as? [String]) == ["spiffe://cluster.local/ns/payments/sa/checkout"])
        let headers = obj["headers"] as? [String: String] ?? [:]
        #expect(headers[":authority"] == "127.0.\(net).20:8080")
        #expect(headers["baggage"]?.contains("k8s.namespace.name=payments") == true)
        #expect(headers["forwarded"]?.hasPrefix("for=\"127.0.\(net).10:") == true)
        #expect(headers["traceparent"]?.split(separator: "-").count == 4)
    }

    /// A 200 that also ends the stream (END_STREAM on the answer's HEADERS: the destination closed
    /// at once) reaches the app as EOF, and its own bytes and FIN still go out. The END_STREAM was
    /// dropped before: the app never saw EOF and the tunnel stayed open.
    @Test func anAnswerThatEndsTheStreamReachesTheAppAsEOF() throws {
        let net = 77
        let (server, record) = try pythonServer(net: net, ["--answer-ends"])
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let mesh = try Mesh(net: net, eastOnly: true)
        defer { mesh.stop() }
        #expect(waitForPort("127.0.\(net).20", 15008))
        let r = try mesh.client("serverfirst", ["--size", "1000"])
        #expect(r["greeting"] as? String == "", "\(r)")
        #expect(r["sent_after_eof"] as? Int == 1000, "\(r)")
        // The app's FIN after its bytes reached the server as END_STREAM.
        var ended = false
        for _ in 0..<50 where !ended {
            ended = (try? String(contentsOfFile: record, encoding: .utf8))?.contains("\"ended\"") == true
            if !ended { usleep(100_000) }
        }
        #expect(ended)
    }

    /// A server that answers our CONNECT with GOAWAY(last_stream_id=0) never processed it: east opens
    /// it again on a new connection, once, and the app sees nothing of it.
    @Test func aStreamRefusedByGoawayIsOpenedAgain() throws {
        let net = 73
        let (server, record) = try pythonServer(net: net, ["--refuse-first"])
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let mesh = try Mesh(net: net, eastOnly: true)
        defer { mesh.stop() }
        #expect(waitForPort("127.0.\(net).20", 15008))
        let r = try mesh.client("echo", ["--size", "1000"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        let lines = (try? String(contentsOfFile: record, encoding: .utf8))?.split(separator: "\n") ?? []
        #expect(lines.filter { $0.contains("refused") }.count == 1)
        #expect(lines.filter { $0.contains("shape_ok") }.count == 1)
    }

    /// A service with a waypoint, and a pod with one, are reached through the waypoint (here the
    /// Python HBONE server, with its own certificate): east dials the waypoint, checks it is the
    /// waypoint workload's identity, and names the VIP or pod address the app dialled, untranslated.
    /// The pod's own node is never contacted (no west proxy runs).
    @Test func servicesAndPodsWithAWaypointAreReachedThroughIt() throws {
        let net = 121
        let (server, record) = try pythonServer(net: net, host: 40)
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let (other, _) = try pythonServer(net: net, host: 41)
        defer { kill(other.processIdentifier, SIGKILL); other.waitUntilExit() }
        var o = Mesh.Options()
        o.eastWorkers = 1   // the Python server serves one connection at a time: both tunnels share east's pooled one
        o.ledgerExtra = "  waypoint: {destination: \"payments/waypoint.payments.svc.cluster.local\"}\n"
        o.topLevel = """
        - uid: west//waypoint-0
          name: waypoint-0
          namespace: payments
          serviceAccount: ledger
          workloadIps: ["127.0.\(net).40"]
          protocol: HBONE
          node: west
          services:
            "payments/waypoint.payments.svc.cluster.local": {15008: 15008}
        - uid: west//waypoint-1
          name: waypoint-1
          namespace: payments
          serviceAccount: waypoint
          workloadIps: ["127.0.\(net).41"]
          protocol: HBONE
          node: west
        services:
        - name: waypoint
          namespace: payments
          hostname: waypoint.payments.svc.cluster.local
          vips: ["127.0.\(net).91"]
          ports: {"15008": 15008}
        - name: reports
          namespace: payments
          hostname: reports.payments.svc.cluster.local
          vips: ["127.0.\(net).50"]
          ports: {"80": 8080}
          waypoint: {destination: "/127.0.\(net).40"}
        - name: audit
          namespace: payments
          hostname: audit.payments.svc.cluster.local
          vips: ["127.0.\(net).51"]
          ports: {"80": 8080}
          waypoint: {destination: "/127.0.\(net).41"}
        """
        let mesh = try Mesh(net: net, o, eastOnly: true)
        defer { mesh.stop() }
        #expect(waitForPort("127.0.\(net).40", 15008))
        let toService = try mesh.client("echo", dest: "127.0.\(net).50:80", ["--size", "20000"])
        #expect(toService["intact"] as? Bool == true, "\(toService)")
        let toPod = try mesh.client("echo", dest: "127.0.\(net).20:8080", ["--size", "20000"])
        #expect(toPod["intact"] as? Bool == true, "\(toPod)")
        let seen = ((try? String(contentsOfFile: record, encoding: .utf8))?.split(separator: "\n") ?? [])
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["shape_ok"] as? Bool == true }
        #expect(seen.compactMap { ($0["headers"] as? [String: String])?[":authority"] } == ["127.0.\(net).50:80", "127.0.\(net).20:8080"])
        #expect(seen.allSatisfy { ($0["client_san"] as? [String]) == ["spiffe://cluster.local/ns/payments/sa/checkout"] })
        // `forwarded` names the service addressed (ztunnel's `;host=`), and no service for a pod.
        let forwarded = seen.compactMap { ($0["headers"] as? [String: String])?["forwarded"] }
        #expect(forwarded.count == 2 && forwarded[0].hasSuffix(";host=reports.payments.svc.cluster.local") && !forwarded[1].contains("host="), "\(forwarded)")
        let metrics = (try? runProgram("/usr/bin/curl", ["-s", "http://\(mesh.eastAdmin):15020/metrics"]))?.output ?? ""
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("istio_tcp_connections_opened_total{") && $0.contains("destination_workload=\"waypoint-0\"")
            && $0.contains("destination_service=\"reports.payments.svc.cluster.local\"") }, "the waypoint is the destination workload, the service the one addressed")
        // A waypoint that does not hold the waypoint workload's identity is refused at the handshake.
        let imposter = try mesh.client("expect-fail", dest: "127.0.\(net).51:80")
        #expect(imposter["failed"] as? Bool == true, "\(imposter)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("spiffe://cluster.local/ns/payments/sa/waypoint") && $0.contains("127.0.\(net).41:15008") },
                "\(mesh.log(mesh.eastLog).suffix(2000))")
    }
}
