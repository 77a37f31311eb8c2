import Foundation
import Testing
import HBONETestSupport

/// hbone against an independent control plane (grpcio, `scripts/lib/fake_istiod.py`): nodes that
/// learn workloads and policies only from Delta xDS and get their SVIDs only from the Istio CA.
@Suite("Control plane (xDS and the Istio CA)", .serialized)
struct ControlPlaneTests {
    /// Workloads of a two-node mesh on `net`: checkout on east, ledger (behind the echo app) on west.
    static func meshWorkloads(net: Int) -> [[String: Any]] {
        [FakeIstiod.workload("checkout-0", serviceAccount: "checkout", ip: "127.0.\(net).10", node: "east"),
         FakeIstiod.workload("ledger-0", serviceAccount: "ledger", ip: "127.0.\(net).20", node: "west")]
    }

    static func istiod(net: Int, tokens: [String: String] = ["token-east": "east", "token-west": "west"]) throws -> FakeIstiod {
        let dir = NSTemporaryDirectory() + "hbone-mesh-\(net)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let istiod = try FakeIstiod(dir: dir, tokens: tokens)
        try istiod.push(meshWorkloads(net: net))
        return istiod
    }

    static func denyCheckout() -> [String: Any] { [
        "name": "payments/deny-checkout", "authorization": [
            "name": "deny-checkout", "namespace": "payments", "scope": "NAMESPACE", "action": "DENY",
            "rules": [["clauses": [["matches": [["serviceAccounts": [["namespace": "payments", "serviceAccount": "checkout"]]]]]]]],
        ] as [String: Any],
    ] }

    @Test("two nodes configured and certified only by the control plane tunnel; a pushed DENY closes open tunnels; removal allows again; a DENY bound to the workload later closes its open tunnel")
    func twoNodesFromTheControlPlane() throws {
        let net = 100
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.eastEnvironment = ["XDS_HEADER_X_MESH_TEST": "east-node", "CLUSTER_ID": "cluster-east", "POD_NAME": "ztunnel-abc",
                             "POD_NAMESPACE": "istio-system", "INSTANCE_IP": "127.0.\(net).2", "ISTIO_META_ENABLE_HBONE": "true",
                             "PROXY_CONFIG": "{\"proxyMetadata\": {\"FROM_PROXY_CONFIG\": \"yes\", \"ENABLE_HBONE\": \"false\"}}",
                             "ISTIO_METAJSON_LABELS": "{\"app\": \"ztunnel\", \"tier\": 1}"]
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 && mesh.readiness(mesh.westAdmin).status == 200 },
                "not ready: \(mesh.readiness(mesh.eastAdmin).body) / \(mesh.readiness(mesh.westAdmin).body)")

        let r = try mesh.client("echo", ["--size", "100000"])
        #expect(r["intact"] as? Bool == true, "\(r)")

        // A service pushed later, with ledger-0 changed to list it: east routes its VIP at once (the
        // push changes east's mesh index; nothing is built again). Removed, the VIP leads nowhere;
        // ledger-0 as it was, its own address still does.
        let late = "payments/late.payments.svc.cluster.local", vip = "127.0.\(net).91"
        func ledger0(_ extra: [String: Any]) -> [String: Any] {
            FakeIstiod.workload("ledger-0", serviceAccount: "ledger", ip: "127.0.\(net).20", node: "west", extra: extra)
        }
        func dumpedEndpoints() -> [String]? {
            let services = mesh.configDump(mesh.eastAdmin)["services"] as? [[String: Any]]
            let service = services?.first { $0["hostname"] as? String == "late.payments.svc.cluster.local" }
            return (service?["endpoints"] as? [String: Any]).map { Array($0.keys) }
        }
        try istiod.push([ledger0(["services": [late: ["ports": [["servicePort": 80, "targetPort": 8080]]]]]),
                         ["name": late, "address": ["service": [
                             "name": "late", "namespace": "payments", "hostname": "late.payments.svc.cluster.local",
                             "addresses": [["network": "", "address": vip]], "ports": [["servicePort": 80, "targetPort": 8080]],
                         ] as [String: Any]]]])
        #expect(waitUntil(timeout: 10) { dumpedEndpoints() == ["Kubernetes//Pod/payments/ledger-0"] }, "\(String(describing: dumpedEndpoints()))")
        let viaLate = try mesh.client("echo", dest: "\(vip):80", ["--size", "1000"])
        #expect(viaLate["intact"] as? Bool == true, "\(viaLate)")
        try istiod.push([ledger0([:])], removed: [late])
        #expect(waitUntil(timeout: 10) { dumpedEndpoints() == nil })
        #expect(try mesh.client("expect-fail", dest: "\(vip):80")["failed"] as? Bool == true)
        let direct = try mesh.client("echo", ["--size", "1000"])
        #expect(direct["intact"] as? Bool == true, "\(direct)")

        // What east sent istiod: ztunnel's node identity and metadata, both types, the headers.
        let xds = istiod.requests("xds").filter { ($0["headers"] as? [String: String])?["authorization"] == "Bearer token-east" }
        let first = xds.filter { $0["response_nonce"] == nil }
        #expect(Set(first.compactMap { $0["type_url"] as? String }) == ["type.googleapis.com/istio.workload.Address",
                                                                      "type.googleapis.com/istio.security.Authorization"])
        let node = first.first?["node"] as? [String: Any]
        #expect(node?["id"] as? String == "ztunnel~127.0.\(net).2~ztunnel-abc.istio-system~istio-system.svc.cluster.local")
        let metadata = node?["metadata"] as? [String: Any]
        func text(_ key: String) -> String? { metadata?[key] as? String }
        #expect(text("NODE_NAME") == "east" && text("CLUSTER_ID") == "cluster-east" && text("NAME") == "ztunnel-abc"
                && text("NAMESPACE") == "istio-system" && text("INSTANCE_IPS") == "127.0.\(net).2"
                && text("ENABLE_HBONE") == "true", "\(String(describing: metadata))")
        // PROXY_CONFIG's proxy metadata (an ISTIO_META_ variable wins), and ISTIO_METAJSON_ values as JSON.
        let labels = metadata?["LABELS"] as? [String: Any]
        #expect(text("FROM_PROXY_CONFIG") == "yes" && labels?["app"] as? String == "ztunnel" && labels?["tier"] as? Double == 1,
                "\(String(describing: metadata))")
        let headers = first.first?["headers"] as? [String: String]
        #expect(headers?["clusterid"] == "cluster-east" && headers?["x_mesh_test"] == "east-node", "\(String(describing: headers))")
        #expect(xds.contains { $0["response_nonce"] != nil && $0["error_detail"] == nil }, "no ACK seen")

        // What the CA saw: one request per local identity, impersonating it, with ztunnel's CSR.
        let ca = istiod.requests("ca")
        let checkout = ca.first { $0["identity"] as? String == "spiffe://cluster.local/ns/payments/sa/checkout" }
        #expect(checkout?["csr_uris"] as? [String] == ["spiffe://cluster.local/ns/payments/sa/checkout"])
        #expect(checkout?["csr_san_critical"] as? Bool == true && checkout?["csr_subject"] as? String == "")
        #expect(checkout?["csr_key"] as? String == "ECPublicKey:secp256r1" && checkout?["validity_duration"] as? Int == 86400)
        #expect((checkout?["headers"] as? [String: String])?["authorization"] == "Bearer token-east")
        #expect(ca.contains { $0["identity"] as? String == "spiffe://cluster.local/ns/payments/sa/ledger" })
        #expect(!ca.contains { $0["identity"] as? String == "spiffe://cluster.local/ns/payments/sa/ledger"
                               && ($0["headers"] as? [String: String])?["authorization"] == "Bearer token-east" },
                "east asked for an identity of another node")

        // A DENY pushed while a tunnel is open: the open tunnel is re-checked and closed, new ones refused.
        let holder = try mesh.startClient("hold", ["--size", "20"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}", timeout: 10) { $0 >= 1 })
        try istiod.push([Self.denyCheckout()], type: "authorization")
        let held = try holder.result()
        #expect(held["echoed"] as? String == "hi" && held["closed_by_peer"] as? Bool == true, "\(held)")
        #expect((held["after"] as? Double ?? 99) < 10, "\(held)")
        let denied = try mesh.client("expect-fail")
        #expect(denied["failed"] as? Bool == true, "\(denied)")

        // Removed at istiod: allowed again.
        try istiod.push([], type: "authorization", removed: ["payments/deny-checkout"])
        #expect(waitUntil(timeout: 10) { ((try? mesh.client("echo", ["--size", "1000"]))?["intact"] as? Bool) == true })

        // As istiod sends a selector policy (WORKLOAD_SELECTOR): the policy, which selects no one by
        // itself, then the workload that now lists it. The open tunnel is decided with the
        // workload's new list, and closed.
        let second = try mesh.startClient("hold", ["--size", "20"])
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_tunnels_open{direction=\"inbound\"}", timeout: 10) { $0 >= 1 })
        var selected = Self.denyCheckout()
        var policy = selected["authorization"] as! [String: Any]
        policy["scope"] = "WORKLOAD_SELECTOR"
        selected["authorization"] = policy
        try istiod.push([selected], type: "authorization")
        try istiod.push([FakeIstiod.workload("ledger-0", serviceAccount: "ledger", ip: "127.0.\(net).20", node: "west",
                                             policies: ["payments/deny-checkout"])])
        let closed = try second.result()
        #expect(closed["echoed"] as? String == "hi" && closed["closed_by_peer"] as? Bool == true, "\(closed)")
        #expect((closed["after"] as? Double ?? 99) < 10, "\(closed)")
        #expect(try mesh.client("expect-fail")["failed"] as? Bool == true)
    }

    /// What istiod sends for a multi-network mesh, over xDS: ledger's pod on `net-b` (west's
    /// network), its stand-in for east (no address, on `net-b`, naming the gateway by network
    /// address), the gateway's workload, and the service with a VIP on each network and its
    /// subject alt names. East, on the default network, reaches ledger through the gateway.
    @Test("a service istiod describes behind another network's gateway is reached through it (double HBONE)")
    func aServiceBehindAnotherNetworksGatewayFromIstiod() throws {
        let net = 124
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        let (gateway, record) = try InteropTests.startGateway(net: net, routes: ["ledger.payments.svc.cluster.local:80"])
        defer { kill(gateway.processIdentifier, SIGKILL); gateway.waitUntilExit() }
        let ledgerService = ["payments/ledger.payments.svc.cluster.local": ["ports": [["servicePort": 80, "targetPort": 8080]]]]
        let ledger = FakeIstiod.workload("ledger-0", serviceAccount: "ledger", ip: "127.0.\(net).20", node: "west",
                                         extra: ["network": "net-b", "services": ledgerService])
        let gatewayIP = Data([127, 0, UInt8(net), 30]).base64EncodedString()
        let standIn: [String: Any] = ["name": "net-b/ledger-behind-gateway", "address": ["workload": [
            "uid": "net-b/ledger-behind-gateway", "name": "net-b/ledger-behind-gateway", "namespace": "payments", "network": "net-b",
            "trustDomain": "cluster.local", "tunnelProtocol": "HBONE", "services": ledgerService,
            "networkGateway": ["address": ["network": "net-b", "address": gatewayIP], "hboneMtlsPort": 15009],
        ] as [String: Any]]]
        let eastwest = FakeIstiod.workload("eastwest", namespace: "istio-system", serviceAccount: "istio-eastwestgateway", ip: "127.0.\(net).30",
                                           node: "", extra: ["network": "net-b"])
        let service: [String: Any] = ["name": "payments/ledger.payments.svc.cluster.local", "address": ["service": [
            "name": "ledger", "namespace": "payments", "hostname": "ledger.payments.svc.cluster.local",
            "addresses": [["network": "", "address": "127.0.\(net).90"], ["network": "net-b", "address": "127.0.\(net).90"]],
            "ports": [["servicePort": 80, "targetPort": 8080]], "subjectAltNames": ["spiffe://cluster.local/ns/payments/sa/ledger"],
        ] as [String: Any]]]
        try istiod.push([ledger, standIn, eastwest, service])
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.westExtra = "  network: net-b"
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 && mesh.readiness(mesh.westAdmin).status == 200 },
                "not ready: \(mesh.readiness(mesh.eastAdmin).body) / \(mesh.readiness(mesh.westAdmin).body)")
        #expect(waitUntil(timeout: 10) { (mesh.configDump(mesh.eastAdmin)["services"] as? [[String: Any]])?.isEmpty == false })

        let r = try mesh.client("echo", dest: "127.0.\(net).90:80", ["--size", "100000"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        let seen = (try? String(contentsOfFile: record, encoding: .utf8)) ?? ""
        #expect(seen.contains("\"client_san\": [\"spiffe://cluster.local/ns/payments/sa/checkout\"]") && seen.contains("ledger.payments.svc.cluster.local:80"), "\(seen)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("connection complete") && $0.contains("dst.addr=127.0.\(net).30:15009")
            && $0.contains("dst.identity=spiffe://cluster.local/ns/payments/sa/ledger") }, "\(mesh.log(mesh.eastLog).suffix(1500))")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("connection complete") && $0.contains("src.identity=spiffe://cluster.local/ns/payments/sa/checkout")
            && $0.contains("dst.hbone_addr=ledger.payments.svc.cluster.local:80") }, "\(mesh.log(mesh.westLog).suffix(1500))")
    }

    /// ledger's endpoints from istiod, with `ledger0` and `ledger1` as extra fields: ledger-0 behind
    /// west's echo app, ledger-1 on a node that no longer answers; its service at 127.0.NET.90 with
    /// `service` as extra fields; checkout with `checkout`. Once `applied` sees the resources in
    /// east's dump, every one of 10 connections to the VIP must reach ledger-0, and east must never
    /// dial ledger-1.
    static func everyConnectionReachesLedger0(net: Int, ledger0: [String: Any], ledger1: [String: Any], checkout: [String: Any] = [:],
                                              service: [String: Any] = [:], applied: @escaping ([String: Any]) -> Bool) throws {
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        let ledgerService = ["payments/ledger.payments.svc.cluster.local": ["ports": [["servicePort": 80, "targetPort": 8080]]]]
        let fields: [String: Any] = [
            "name": "ledger", "namespace": "payments", "hostname": "ledger.payments.svc.cluster.local",
            "addresses": [["network": "", "address": "127.0.\(net).90"]], "ports": [["servicePort": 80, "targetPort": 8080]],
        ]
        try istiod.push([
            FakeIstiod.workload("checkout-0", serviceAccount: "checkout", ip: "127.0.\(net).10", node: "east", extra: checkout),
            FakeIstiod.workload("ledger-0", serviceAccount: "ledger", ip: "127.0.\(net).20", node: "west",
                                extra: ledger0.merging(["services": ledgerService]) { $1 }),
            FakeIstiod.workload("ledger-1", serviceAccount: "ledger", ip: "127.0.\(net).21", node: "gone",
                                extra: ledger1.merging(["services": ledgerService]) { $1 }),
            ["name": "payments/ledger.payments.svc.cluster.local", "address": ["service": fields.merging(service) { $1 }]],
        ])
        var o = Mesh.Options()
        o.controlPlane = istiod
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 && mesh.readiness(mesh.westAdmin).status == 200 },
                "not ready: \(mesh.readiness(mesh.eastAdmin).body) / \(mesh.readiness(mesh.westAdmin).body)")
        #expect(waitUntil(timeout: 10) { applied(mesh.configDump(mesh.eastAdmin)) })
        for i in 0..<10 {
            let r = try mesh.client("echo", dest: "127.0.\(net).90:80", ["--size", "1000"])
            #expect(r["intact"] as? Bool == true, "connection \(i): \(r)")
        }
        #expect(!mesh.log(mesh.eastLog).contains("127.0.\(net).21"), "\(mesh.log(mesh.eastLog).suffix(1500))")
    }

    /// istiod marks a pod that is not ready, or terminating, UNHEALTHY. Here ledger-1 is one whose
    /// node no longer answers: hbone used to send it every other new connection to the service,
    /// and each of those failed. Now every connection goes to the healthy ledger-0.
    @Test("an endpoint istiod marks unhealthy gets no connections to its service")
    func anUnhealthyEndpointFromIstiodGetsNoConnections() throws {
        try Self.everyConnectionReachesLedger0(net: 125, ledger0: ["status": "HEALTHY"], ledger1: ["status": "UNHEALTHY"]) { dump in
            let workloads = dump["workloads"] as? [[String: Any]] ?? []
            return workloads.contains { $0["name"] as? String == "ledger-1" && $0["status"] as? String == "Unhealthy" }
        }
    }

    /// Kubernetes `trafficDistribution: PreferClose` as istiod sends it (load_balancing FAILOVER
    /// over the zone) and the workloads' localities, from the independent control plane: checkout
    /// runs in zone z1, where ledger-0 is; ledger-1 is in z2, on a node that no longer answers.
    /// Every connection stays in checkout's zone.
    @Test("a service that prefers close endpoints, from istiod, keeps connections in the client's zone")
    func aServicePreferringCloseEndpointsFromIstiod() throws {
        func zone(_ z: String) -> [String: Any] { ["locality": ["region": "r1", "zone": z]] }
        try Self.everyConnectionReachesLedger0(
            net: 126, ledger0: zone("z1"), ledger1: zone("z2"), checkout: zone("z1"),
            service: ["loadBalancing": ["routingPreference": ["NETWORK", "REGION", "ZONE", "SUBZONE"], "mode": "FAILOVER"]]
        ) { dump in
            let services = dump["services"] as? [[String: Any]] ?? []
            return services.contains { ($0["loadBalancer"] as? [String: Any])?["mode"] as? String == "Failover" }
        }
    }

    /// A ServiceEntry's CIDR VIP from istiod (a VIP with a prefix length): the address the client
    /// dials, 127.0.128.90, is no VIP of its own but inside the block, so it is the service. hbone
    /// used to drop the length and take the block's first address as the only VIP, sending every
    /// other address of the block around the service.
    @Test("an address inside a service's CIDR VIP from istiod reaches the service's endpoint")
    func anAddressInsideACIDRVIPFromIstiod() throws {
        try Self.everyConnectionReachesLedger0(
            net: 128, ledger0: ["status": "HEALTHY"], ledger1: ["status": "UNHEALTHY"],
            service: ["addresses": [["network": "", "address": "127.0.128.64", "length": 26]]]
        ) { dump in
            let services = dump["services"] as? [[String: Any]] ?? []
            return services.contains { $0["cidrVips"] as? [String] == ["/127.0.128.64/26"] }
        }
    }

    @Test("a partly bad response: good resources applied, each bad one NACKed by name, and asked for again on the next stream")
    func nackNamesEachBadResource() throws {
        let net = 101
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 })

        var fiveBytes = FakeIstiod.workload("five-0", serviceAccount: "five", ip: "127.0.\(net).40", node: "west")
        var w = (fiveBytes["address"] as! [String: Any])["workload"] as! [String: Any]
        w["addresses"] = nil
        w["rawAddresses"] = ["AQIDBAU="]   // 5 bytes
        fiveBytes["address"] = ["workload": w]
        let badService: [String: Any] = ["name": "payments/", "address": ["service": ["name": "x", "namespace": "payments", "hostname": ""]]]
        let corrupt: [String: Any] = ["name": "Kubernetes//Pod/payments/corrupt-0",
                                      "raw": ["type_url": "type.googleapis.com/istio.workload.Address", "value_b64": "CgP/////"]]
        let good = FakeIstiod.workload("good-0", serviceAccount: "good", ip: "127.0.\(net).30", node: "west")
        try istiod.push([good, fiveBytes, badService, corrupt])

        #expect(waitUntil(timeout: 10) { istiod.requests("xds").contains { $0["error_detail"] != nil } })
        let nack = istiod.requests("xds").first { $0["error_detail"] != nil }
        let reason = ((nack?["error_detail"] as? [String: Any])?["message"] as? String) ?? ""
        for name in ["Kubernetes//Pod/payments/five-0", "payments/", "Kubernetes//Pod/payments/corrupt-0"] {
            #expect(reason.contains(name), "NACK does not name \(name): \(reason)")
        }
        #expect(!reason.contains("good-0"), "\(reason)")
        let dump = mesh.configDump(mesh.eastAdmin)
        let names = (dump["workloads"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.contains("good-0") && !names.contains("five-0"), "\(names)")
        let cp = (dump["controlPlane"] as? [String: Any])?["xds"] as? [String: Any]
        let address = (cp?["types"] as? [String: Any])?["type.googleapis.com/istio.workload.Address"] as? [String: Any]
        #expect((address?["lastNackReason"] as? String)?.contains("five-0") == true, "\(String(describing: address))")
        #expect(mesh.metric(admin: mesh.eastAdmin, "hbone_xds_nacks_total{type_url=\"type.googleapis.com/istio.workload.Address\"}") == 1)
        // ztunnel's series for the same responses: how many, and how many resource bytes.
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_xds_message_total{url=\"type.googleapis.com/istio.workload.Address\"}") ?? 0 >= 1)
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_xds_message_bytes_total{url=\"type.googleapis.com/istio.workload.Address\"}") ?? 0 > 100)
        let admin = try runProgram(hboneBinary, ["admin", "controlplane", "--admin", "\(mesh.eastAdmin):15000"]).output
        #expect(admin.contains("connected, synced") && admin.contains("last NACK (nonce") && admin.contains("five-0")
                && admin.contains("spiffe://cluster.local/ns/payments/sa/checkout  valid"), "\(admin)")

        // A new stream (istiod recycles it): what east holds is listed, the rejected ones are not.
        let before = istiod.requests("xds").count
        try istiod.post("/xds/end", ["code": 14])
        #expect(waitUntil(timeout: 10) {
            istiod.requests("xds").dropFirst(before).contains { ($0["initial_resource_versions"] as? [String: Any]) != nil }
        })
        let again = istiod.requests("xds").dropFirst(before).filter { $0["response_nonce"] == nil }
        let held = again.compactMap { $0["initial_resource_versions"] as? [String: Any] }.flatMap(\.keys)
        #expect(held.contains("Kubernetes//Pod/payments/good-0"), "\(held)")
        #expect(!held.contains("Kubernetes//Pod/payments/five-0") && !held.contains("Kubernetes//Pod/payments/corrupt-0"), "\(held)")
    }

    @Test("readiness waits for the first ACK of every type, then holds while istiod is away; tunnels go on")
    func readinessAndOutage() throws {
        let net = 102
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        try istiod.post("/xds/mode", ["mode": "silent"])
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.xdsExtra = "    firstResponseTimeout: 1s"
        let mesh = try Mesh(net: net, o, eastOnly: true)
        defer { mesh.stop() }
        // A stream that says nothing is given up and replaced; readiness names what is missing.
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_xds_stream_ends_total{reason=\"cancelled\"}", timeout: 10) { $0 >= 1 })
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_xds_connection_terminations_total{reason=\"Reconnect\"}") ?? 0 >= 1)
        let waiting = mesh.readiness(mesh.eastAdmin)
        #expect(waiting.status == 500 && waiting.body.contains("xDS: waiting for the first ACK"), "\(waiting)")

        try istiod.post("/xds/mode", ["mode": "normal"])
        #expect(waitUntil(timeout: 20) { mesh.readiness(mesh.eastAdmin).status == 200 }, "\(mesh.readiness(mesh.eastAdmin))")
        let ready = mesh.configDump(mesh.eastAdmin)
        #expect((ready["workloads"] as? [[String: Any]] ?? []).count == 2)

        istiod.stop()
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_xds_connected", timeout: 10) { $0 == 0 })
        #expect(mesh.readiness(mesh.eastAdmin).status == 200)
        #expect((mesh.configDump(mesh.eastAdmin)["workloads"] as? [[String: Any]] ?? []).count == 2, "the last state stays in force")
        // It keeps trying, with backoff: a few attempts, not a storm.
        let attempts = mesh.metric(admin: mesh.eastAdmin, "hbone_xds_connection_attempts_total") ?? 0
        Thread.sleep(forTimeInterval: 1.5)
        let later = mesh.metric(admin: mesh.eastAdmin, "hbone_xds_connection_attempts_total") ?? 0
        #expect(later > attempts && later - attempts < 12, "\(attempts) → \(later)")
    }

    @Test("garbage and oversized xDS messages end the stream with a reason; the proxy lives on and reconnects")
    func garbageAndOversize() throws {
        let net = 103
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        try istiod.post("/xds/mode", ["mode": "garbage"])
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.xdsExtra = "    maxMessageBytes: 1048576"
        let mesh = try Mesh(net: net, o, eastOnly: true)
        defer { mesh.stop() }
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_xds_stream_ends_total{reason=\"cancelled\"}", timeout: 10) { $0 >= 1 })
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("xDS response does not decode") })
        try istiod.post("/xds/mode", ["mode": "oversize"])
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_xds_stream_ends_total{reason=\"resource_exhausted\"}", timeout: 20) { $0 >= 1 })
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_xds_connection_terminations_total{reason=\"Error\"}") ?? 0 >= 1)
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("exceeds the 1048576-byte limit") })
        try istiod.post("/xds/mode", ["mode": "normal"])
        #expect(waitUntil(timeout: 20) { mesh.readiness(mesh.eastAdmin).status == 200 }, "\(mesh.readiness(mesh.eastAdmin))")
        let running = mesh.processes.allSatisfy { $0.isRunning }
        #expect(running)
    }

    @Test("a CA answer that fails a check is not served: wrong SAN, empty chain, foreign root, not PEM")
    func badCAAnswers() throws {
        for (i, mode) in ["wrong_san", "empty_chain", "foreign_root", "not_pem"].enumerated() {
            let net = 104 + i
            let istiod = try Self.istiod(net: net)
            defer { istiod.stop() }
            try istiod.post("/ca/mode", ["mode": mode])
            var o = Mesh.Options()
            o.controlPlane = istiod
            let mesh = try Mesh(net: net, o, eastOnly: true)
            defer { mesh.stop() }
            #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_ca_requests_total{outcome=\"rejected_answer\"}", timeout: 10) { $0 >= 1 }, "\(mode)")
            let ready = mesh.readiness(mesh.eastAdmin)
            #expect(ready.status == 500 && ready.body.contains("spiffe://cluster.local/ns/payments/sa/checkout"), "\(mode): \(ready)")
            let dump = mesh.configDump(mesh.eastAdmin)
            let certs = (dump["certificates"] as? [[String: Any]]) ?? []
            #expect(certs.first?["state"] as? String == "Unavailable", "\(mode): \(certs)")
            let state = (((dump["controlPlane"] as? [String: Any])?["ca"] as? [String: Any])?["certificates"] as? [String: Any])?[
                "spiffe://cluster.local/ns/payments/sa/checkout"] as? [String: Any]
            #expect(state?["lastError"] is String, "\(mode): \(String(describing: state))")
            // A connection that needs the identity is refused.
            let r = try mesh.client("expect-fail", dest: "127.0.\(net).20:8080")
            #expect(r["failed"] as? Bool == true, "\(mode): \(r)")
        }
    }

    @Test("node authorization: the CA refuses identities not on the caller's node; the proxy refuses those connections and backs off")
    func nodeAuthorization() throws {
        let net = 108
        // east's token stands for another node: every identity east asks for is refused.
        let istiod = try Self.istiod(net: net, tokens: ["token-east": "elsewhere", "token-west": "west"])
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_ca_requests_total{outcome=\"refused\"}", timeout: 10) { $0 >= 1 })
        let ready = mesh.readiness(mesh.eastAdmin)
        #expect(ready.status == 500 && ready.body.contains("request impersonation authentication failure"), "\(ready)")
        let r = try mesh.client("expect-fail")
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("request impersonation authentication failure") })
        // Not hammered: after 3.5 s at most 3 attempts (at once, ~1 s, ~3 s).
        Thread.sleep(forTimeInterval: 3.5)
        let asked = istiod.requests("ca").filter { ($0["headers"] as? [String: String])?["authorization"] == "Bearer token-east" }.count
        #expect(asked >= 2 && asked <= 4, "\(asked) requests")
        // west, whose token is its own, is fine.
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.westAdmin).status == 200 })
    }

    @Test("control-plane TLS: a wrong root or a wrong server name fails before any request; ALT_XDS_HOSTNAME fixes the name")
    func controlPlaneTLS() throws {
        let net = 109
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        // east dials istiod as "localhost" (not in its certificate) and trusts only the unrelated root for xDS.
        o.xdsExtra = "    altHostname: istiod.invalid"
        o.eastEnvironment = ["XDS_ADDRESS": "https://localhost:\(istiod.grpcPort)", "CA_ADDRESS": "https://localhost:\(istiod.grpcPort)"]
        let mesh = try Mesh(net: net, o, eastOnly: true)
        defer { mesh.stop() }
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_xds_stream_ends_total{reason=\"connection_failed\"}", timeout: 10) { $0 >= 1 })
        #expect(mesh.metric(admin: mesh.eastAdmin, "istio_xds_connection_terminations_total{reason=\"ConnectionError\"}") ?? 0 >= 1)
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("TLS handshake with localhost failed") })
        #expect(istiod.requests("xds").isEmpty && istiod.requests("ca").isEmpty, "a request reached istiod")
        mesh.stop()

        // The same name with ALT_XDS_HOSTNAME set to one the certificate carries: connects.
        var o2 = Mesh.Options()
        o2.controlPlane = istiod
        o2.eastEnvironment = ["XDS_ADDRESS": "https://localhost:\(istiod.grpcPort)", "CA_ADDRESS": "https://localhost:\(istiod.grpcPort)",
                              "ALT_XDS_HOSTNAME": "istiod.istio-system.svc"]
        let mesh2 = try Mesh(net: net, o2, eastOnly: true)
        defer { mesh2.stop() }
        #expect(waitUntil(timeout: 10) { mesh2.readiness(mesh2.eastAdmin).status == 200 }, "\(mesh2.readiness(mesh2.eastAdmin))")
        mesh2.stop()

        // ALT_CA_HOSTNAME names the CA's certificate apart from xDS's: a wrong one fails the CA only.
        var o4 = o2
        o4.eastEnvironment["ALT_CA_HOSTNAME"] = "istiod.invalid"
        let caBefore = istiod.requests("ca").count, xdsBefore = istiod.requests("xds").count
        let mesh4 = try Mesh(net: net, o4, eastOnly: true)
        defer { mesh4.stop() }
        #expect(mesh4.waitForLog(mesh4.eastLog) { $0.contains("TLS handshake with localhost failed") })
        #expect(waitUntil(timeout: 10) { istiod.requests("xds").count > xdsBefore }, "xDS did not connect")
        #expect(istiod.requests("ca").count == caBefore, "a CA request got through a certificate without the CA's name")
        mesh4.stop()

        // A wrong root: the handshake fails.
        var o3 = Mesh.Options()
        o3.controlPlane = istiod
        o3.eastEnvironment = ["XDS_ROOT_CA": TestPKI.path("other-root/root-cert.pem")]
        let before = istiod.requests("xds").count
        let mesh3 = try Mesh(net: net, o3, eastOnly: true)
        defer { mesh3.stop() }
        #expect(mesh3.waitForLog(mesh3.eastLog) { $0.contains("TLS handshake with 127.0.0.1 failed") })
        #expect(istiod.requests("xds").count == before)
    }

    @Test("the CA away: a valid certificate is kept while renewal retries back off, refused after expiry with the reason; a gone workload's certificate is dropped")
    func certificateOutageAndDrop() throws {
        let net = 110
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.eastEnvironment = ["SECRET_TTL": "6s"]
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 && mesh.readiness(mesh.westAdmin).status == 200 })
        let checkout = "spiffe://cluster.local/ns/payments/sa/checkout"
        #expect(istiod.requests("ca").first { $0["identity"] as? String == checkout }?["validity_duration"] as? Int == 6)

        try istiod.post("/ca/mode", ["mode": "unavailable"])
        // Renewal at half-life (3 s) fails; the certificate in hand still serves.
        #expect(mesh.waitForMetric(admin: mesh.eastAdmin, "hbone_ca_requests_total{outcome=\"unavailable\"}", timeout: 10) { $0 >= 1 })
        let kept = try mesh.client("echo", ["--size", "1000"])
        #expect(kept["intact"] as? Bool == true, "\(kept)")
        // Past expiry it is not served: readiness and refused connections say why.
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 500 })
        let ready = mesh.readiness(mesh.eastAdmin)
        #expect(ready.body.contains(checkout) && ready.body.contains("CA is down"), "\(ready)")
        let refused = try mesh.client("expect-fail")
        #expect(refused["failed"] as? Bool == true, "\(refused)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("no certificate for \(checkout): CreateCertificate: UNAVAILABLE") })
        // Backing off per identity: a handful of attempts over those seconds, not one per tick.
        let attempts = mesh.metric(admin: mesh.eastAdmin, "hbone_ca_requests_total{outcome=\"unavailable\"}") ?? 0
        #expect(attempts >= 1 && attempts <= 4, "\(attempts)")

        // The CA is back; then the last workload with that identity goes: its certificate goes too.
        try istiod.post("/ca/mode", ["mode": "normal"])
        #expect(waitUntil(timeout: 15) { mesh.readiness(mesh.eastAdmin).status == 200 }, "\(mesh.readiness(mesh.eastAdmin))")
        try istiod.push([], removed: ["Kubernetes//Pod/payments/checkout-0"])
        #expect(waitUntil(timeout: 10) {
            let ca = (mesh.configDump(mesh.eastAdmin)["controlPlane"] as? [String: Any])?["ca"] as? [String: Any]
            return (ca?["certificates"] as? [String: Any])?.isEmpty == true
        })
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("certificate dropped: no local workload needs it") })
    }

    @Test("without a root file, the trust bundle is the roots the CA returned")
    func trustFromTheCA() throws {
        let net = 111
        let istiod = try Self.istiod(net: net)
        defer { istiod.stop() }
        var o = Mesh.Options()
        o.controlPlane = istiod
        o.trustFromCA = true
        let mesh = try Mesh(net: net, o)
        defer { mesh.stop() }
        #expect(waitUntil(timeout: 10) { mesh.readiness(mesh.eastAdmin).status == 200 && mesh.readiness(mesh.westAdmin).status == 200 })
        let r = try mesh.client("echo", ["--size", "5000"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        let certs = mesh.configDump(mesh.eastAdmin)["certificates"] as? [[String: Any]] ?? []
        let roots = (certs.first?["rootCerts"] as? [[String: Any]] ?? []).compactMap { $0["subject"] as? String }
        #expect(roots == ["CN=hbone mesh root,O=hbone-test"], "\(roots)")
    }
}
