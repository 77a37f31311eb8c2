import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// In-pod mode as ztunnel's namespaced tests run it: a node namespace holding the proxy, pod
/// namespaces joined to it by veth pairs, istio-cni's in-pod redirection inside each pod
/// (scripts/inpod-redirect.sh), and a stand-in CNI agent (Python, socket.send_fds) handing the
/// pods' namespaces over ZDS. Needs root, ip and iptables; reported as skipped otherwise.
@Suite(.serialized, .enabled(if: captureTestsCanRun, "needs root, ip netns and iptables"))
struct InPodTests {
    let tag = getpid() % 10000
    var node: String { "hbn-\(tag)" }
    var podA: String { "hbpa-\(tag)" }
    var podB: String { "hbpb-\(tag)" }
    /// A pod only the CNI agent names (no workload in the file): served from what the agent said.
    var podC: String { "hbpc-\(tag)" }
    /// A waypoint enrolled in the mesh, taking its tunnels behind a PROXY header on its loopback.
    var podD: String { "hbpd-\(tag)" }
    let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/usr/bin/ip"
    let aIP = "10.78.0.10", bIP = "10.78.0.20", cIP = "10.78.0.30", dIP = "10.78.0.40"

    func sh(_ args: [String]) -> Int32 { run(ip, args) }
    func inNS(_ ns: String, _ args: [String]) -> Int32 { run(ip, ["netns", "exec", ns] + args) }

    /// A stand-in agent driven line by line on its stdin; each command's JSON answer is returned.
    final class Agent {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        var buffered = Data()

        init(ns: String, ip: String, uds: String, log: String) throws {
            let python = try FakeIstiod.environment()
            process.executableURL = URL(fileURLWithPath: ip)
            process.arguments = ["netns", "exec", ns, python + "/bin/python", repositoryRoot + "/scripts/lib/fake_cni_agent.py",
                                 "--uds", uds, "--proto-dir", python + "/proto"]
            process.standardInput = input
            process.standardOutput = output
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
        }

        func send(_ command: String) -> [String: Any] {
            input.fileHandleForWriting.write(Data((command + "\n").utf8))
            while !buffered.contains(0x0a) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { return ["error": "the agent exited"] }
                buffered.append(chunk)
            }
            let end = buffered.firstIndex(of: 0x0a)!
            let line = buffered[..<end]
            buffered = Data(buffered[(end + 1)...])
            return ((try? JSONSerialization.jsonObject(with: line)) as? [String: Any]) ?? ["error": "not JSON: \(String(decoding: line, as: UTF8.self))"]
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    func config(dir: String) -> String {
        """
        workloads:
        - {uid: "Kubernetes//Pod/payments/checkout-0", name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["\(aIP)"], protocol: HBONE, node: node-1}
        - {uid: "Kubernetes//Pod/payments/ledger-0", name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["\(bIP)"], protocol: HBONE, node: node-1}
        - {uid: "Kubernetes//Pod/payments/waypoint-0", name: waypoint-0, namespace: payments, serviceAccount: audit, workloadIps: ["\(dIP)"], protocol: HBONE,
           node: node-1, applicationTunnel: {protocol: PROXY, port: 15088}}
        services:
        - {name: ledger, namespace: payments, vips: ["10.96.0.20"], ports: {"8080": 8080}}
        - {name: reports, namespace: payments, vips: ["10.96.0.50"], ports: {"80": 8080}, waypoint: {destination: "/\(dIP)"}}
        hbone:
          node: node-1
          rootCertificates: \(TestPKI.path("bundle-root.pem"))
          certificates: {directory: \(dir)/certs}
          authorizationPolicies: ["\(dir)/policies"]
          inpod: {uds: \(dir)/ztunnel.sock}
          dns: {upstreams: ["169.254.1.1:53"], upstreamTimeout: 1s}
          timeouts: {drain: 1s}
          listen:
            admin: 127.0.0.1:15000
            metrics: 127.0.0.1:15020
            readiness: 127.0.0.1:15021
        """
    }

    /// Connects from `ns` to `dest` (optionally marked to skip redirection); the server answers with
    /// the address it saw the connection come from.
    func whoami(_ ns: String, dest: String, mark: Int? = nil) throws -> [String: Any] {
        try runJSON(ip, ["netns", "exec", ns, "python3", repositoryRoot + "/scripts/lib/plain_client.py", "--source", ns == podA ? aIP : bIP,
                         "--dest", dest, "--message", "who am i"] + (mark.map { ["--mark", "\($0)"] } ?? []))
    }

    func openFDs(_ pid: Int32) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }

    @Test func podsHandedOverByTheCNIAgentAreServedInTheirOwnNamespaces() throws {
        let dir = NSTemporaryDirectory() + "hbone-inpod-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        // Both pods' SVIDs in one directory (one node holds every local pod's identity).
        try FileManager.default.createDirectory(atPath: dir + "/certs/payments", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestPKI.path("certs-east/payments/checkout"), toPath: dir + "/certs/payments/checkout")
        try FileManager.default.copyItem(atPath: TestPKI.path("certs-west/payments/ledger"), toPath: dir + "/certs/payments/ledger")
        try FileManager.default.copyItem(atPath: TestPKI.path("certs-west/payments/audit"), toPath: dir + "/certs/payments/audit")
        var processes: [Process] = []
        var agent: Agent?
        defer {
            agent?.stop()
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            for p in processes { p.waitUntilExit() }
            for ns in [podA, podB, podC, podD, node] { _ = sh(["netns", "del", ns]) }
        }
        for ns in [node, podA, podB, podC, podD] { #expect(sh(["netns", "add", ns]) == 0) }
        #expect(inNS(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]) == 0)
        for (pod, podIP, n) in [(podA, aIP, "a"), (podB, bIP, "b"), (podC, cIP, "c"), (podD, dIP, "d")] {
            let host = "hbh\(n)\(tag)", inPod = "hbp\(n)\(tag)"
            #expect(sh(["link", "add", host, "netns", node, "type", "veth", "peer", "name", inPod, "netns", pod]) == 0)
            #expect(inNS(pod, ["ip", "link", "set", "lo", "up"]) == 0)
            #expect(inNS(pod, ["ip", "addr", "add", "\(podIP)/32", "dev", inPod]) == 0)
            #expect(inNS(pod, ["ip", "link", "set", inPod, "up"]) == 0)
            #expect(inNS(pod, ["ip", "route", "add", "169.254.1.1", "dev", inPod, "scope", "link"]) == 0)
            #expect(inNS(pod, ["ip", "route", "add", "default", "via", "169.254.1.1", "dev", inPod]) == 0)
            #expect(inNS(node, ["ip", "addr", "add", "169.254.1.1/32", "dev", host]) == 0)
            #expect(inNS(node, ["ip", "link", "set", host, "up"]) == 0)
            #expect(inNS(node, ["ip", "route", "add", "\(podIP)/32", "dev", host]) == 0)
            #expect(inNS(pod, [repositoryRoot + "/scripts/inpod-redirect.sh"]) == 0)
        }
        #expect(inNS(node, ["ip", "link", "set", "lo", "up"]) == 0)
        try config(dir: dir).write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        func start(_ ns: String, _ args: [String], log: String) throws -> Process {
            let p = try startInNamespace(ip: ip, ns, args, log: log)
            processes.append(p)
            return p
        }
        // The app in pod B answers with the address its client came from.
        let server = "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('\(bIP)', 8080)); s.listen(16)\n" +
            "open('\(dir)/app.ready','w').close()\nwhile True:\n  c,a=s.accept(); c.recv(100); c.sendall(('peer=%s' % a[0]).encode()); c.close()\n" +
            "  open('\(dir)/app.count','a').write('x')\n"
        _ = try start(podB, ["python3", "-c", server], log: dir + "/app.log")
        let serverC = server.replacingOccurrences(of: "'\(bIP)'", with: "'\(cIP)'").replacingOccurrences(of: "app.ready", with: "appc.ready")
            .replacingOccurrences(of: "app.count", with: "appc.count")
        _ = try start(podC, ["python3", "-c", serverC], log: dir + "/appc.log")
        // The waypoint in D listens on its loopback only: its tunnels come from the proxy in its namespace.
        _ = try start(podD, ["python3", repositoryRoot + "/scripts/lib/echo_server.py", "127.0.0.1", "15088", "--proxy-protocol", dir + "/proxy-headers.jsonl",
                             "--ready-file", dir + "/appd.ready"], log: dir + "/appd.log")
        // The cluster's DNS, seen from the pods at the node's side of their veth.
        _ = try start(node, ["python3", repositoryRoot + "/scripts/lib/dns_tool.py", "upstream", "--listen", "169.254.1.1:53",
                             "--log", dir + "/upstream.log", "--ready", dir + "/upstream.ready"], log: dir + "/upstream.err")
        agent = try Agent(ns: node, ip: ip, uds: dir + "/ztunnel.sock", log: dir + "/agent.log")
        let proxy = try start(node, [hboneBinary, "proxy", "--config", dir + "/node.yaml", "--workers", "2"], log: dir + "/hbone.log")
        let log = { (try? String(contentsOfFile: dir + "/hbone.log", encoding: .utf8)) ?? "" }
        let hello = agent!.send("wait")
        #expect((hello["hello"] as? [String: Any])?["version"] as? Int == 1, "\(hello) \(log())")
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/app.ready") })

        let dump = { () -> [String: Any] in (try? runJSON(ip, ["netns", "exec", node, "curl", "-s", "http://127.0.0.1:15000/config_dump"])) ?? [:] }
        let ready = { () -> String in (try? runProgram(ip, ["netns", "exec", node, "curl", "-s", "http://127.0.0.1:15021/healthz/ready"]).output) ?? "" }
        #expect(waitUntil(timeout: 5) { ready().contains("waiting for the CNI agent's snapshot") }, "\(ready())")

        // The pods come over ZDS; each add is ACKed once the pod's listeners are up.
        let addA = agent!.send("add Kubernetes//Pod/payments/checkout-0 checkout-0 payments checkout \(podA)")
        let addB = agent!.send("add Kubernetes//Pod/payments/ledger-0 ledger-0 payments ledger \(podB)")
        #expect(addA["ack"] as? String == "" && addB["ack"] as? String == "", "\(addA) \(addB)\n\(log())")
        #expect(agent!.send("snapshot")["ack"] as? String == "")
        #expect(waitUntil(timeout: 5) { ready().hasPrefix("ready") }, "\(ready())")
        let pods = (dump()["pods"] as? [[String: Any]] ?? []).map { "\($0["uid"] ?? "")=\($0["state"] ?? "")" }
        #expect(pods == ["Kubernetes//Pod/payments/checkout-0=listening", "Kubernetes//Pod/payments/ledger-0=listening"], "\(pods)")
        let zds = dump()["zds"] as? [String: Any]
        #expect(zds?["connected"] as? Bool == true && zds?["snapshotReceived"] as? Bool == true, "\(String(describing: zds))")
        let (_, listening) = try runProgram(ip, ["netns", "exec", podB, "ss", "-Htln"])
        for port in [":15001", ":15006", ":15008"] { #expect(listening.contains(port), "\(listening)") }

        // 1. An unmodified client in A reaches B by IP and port; B's app sees A's pod IP; the proxy
        //    names A's identity on the inbound side.
        let r = try whoami(podA, dest: "\(bIP):8080")
        #expect(r["echoed"] as? String == "peer=\(aIP)", "\(r)\n\(log())")
        #expect(waitUntil(timeout: 5) { log().contains("src.identity=spiffe://cluster.local/ns/payments/sa/checkout") && log().contains("direction=inbound") },
                "\(log())")
        #expect(log().contains("dst.addr=\(bIP):15008 dst.hbone_addr=\(bIP):8080"), "\(log())")

        // 1b. DNS: the app's query to the cluster's resolver is captured into the pod's 15053. A
        //     service's name is answered there from the pod's point of view (namespace payments);
        //     another name is forwarded from inside the pod (the upstream sees the pod's address),
        //     marked, so capture does not send it back.
        let (_, udpListening) = try runProgram(ip, ["netns", "exec", podB, "ss", "-Huln"])
        #expect(udpListening.contains("127.0.0.1:15053"), "\(udpListening)")
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/upstream.ready") })
        func dig(_ name: String, tcp: Bool = false) throws -> [String: Any] {
            try runJSON(ip, ["netns", "exec", podA, "python3", repositoryRoot + "/scripts/lib/dns_tool.py", "query", "--server", "10.96.0.10:53",
                             "--name", name] + (tcp ? ["--tcp"] : []))
        }
        for tcp in [false, true] {
            let service = try dig("ledger", tcp: tcp)
            #expect((service["answers"] as? [[Any]])?.map { "\($0[3])" } == ["10.96.0.20"] && service["aa"] as? Bool == true, "\(service)\n\(log())")
        }
        let outside = try dig("www.example.com")
        #expect((outside["answers"] as? [[Any]])?.map { "\($0[3])" } == ["203.0.113.1"], "\(outside)\n\(log())")
        let upstreamLog = (try? String(contentsOfFile: dir + "/upstream.log", encoding: .utf8)) ?? ""
        #expect(upstreamLog.contains("udp \(aIP) www.example.com") && !upstreamLog.contains("ledger"), "\(upstreamLog)")

        let metrics = (try? runProgram(ip, ["netns", "exec", node, "curl", "-s", "http://127.0.0.1:15020/metrics"]).output) ?? ""
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("istio_tcp_connections_opened_total{reporter=\"destination\"")
            && $0.contains("source_principal=\"spiffe://cluster.local/ns/payments/sa/checkout\"") }, "\(metrics.prefix(3000))")
        // ztunnel's workload manager series (Istio's ztunnel dashboard): both pods served, none pending.
        let lines = Set(metrics.split(separator: "\n").map(String.init))
        for line in ["workload_manager_active_proxy_count 2", "workload_manager_pending_proxy_count 0", "workload_manager_proxies_started_total 2",
                     "workload_manager_proxies_stopped_total 0"] {
            #expect(lines.contains(line), "\(line) in \(lines.filter { $0.hasPrefix("workload_manager") })")
        }

        // 2. Skipping redirection in A lands on B's 15006 in plaintext; B's app still sees A's IP.
        let plain = try whoami(podA, dest: "\(bIP):8080", mark: 1337)
        #expect(plain["echoed"] as? String == "peer=\(aIP)", "\(plain)")

        // 2b. A pod only the agent named (C: no workload in the file): its listeners serve it from
        //     what the agent said; A reaches it (not a known workload: plain TCP, marked) and C's
        //     app still sees A's address through C's 15006.
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/appc.ready") })
        #expect(agent!.send("add Kubernetes//Pod/payments/audit-0 audit-0 payments audit \(podC)")["ack"] as? String == "")
        let toC = try whoami(podA, dest: "\(cIP):8080")
        #expect(toC["echoed"] as? String == "peer=\(aIP)", "\(toC)\n\(log())")
        let podsNow = (dump()["pods"] as? [[String: Any]] ?? []).first { $0["uid"] as? String == "Kubernetes//Pod/payments/audit-0" }
        #expect(podsNow?["identity"] as? String == "spiffe://cluster.local/ns/payments/sa/audit" && podsNow?["state"] as? String == "listening",
                "\(String(describing: podsNow))")

        // 2c. A service whose waypoint is D: A's tunnel names the service; the proxy ends it in D and
        //     hands it to D's loopback port behind a PROXY header naming A, the service and A's SVID.
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/appd.ready") })
        #expect(agent!.send("add Kubernetes//Pod/payments/waypoint-0 waypoint-0 payments audit \(podD)")["ack"] as? String == "")
        let toWaypoint = try whoami(podA, dest: "10.96.0.50:80")
        #expect(toWaypoint["echoed"] as? String == "who am i", "\(toWaypoint)\n\(log())")
        let header = ((try? String(contentsOfFile: dir + "/proxy-headers.jsonl", encoding: .utf8))?.split(separator: "\n").first)
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        #expect((header["src"] as? String)?.hasPrefix("\(aIP):") == true && header["dst"] as? String == "10.96.0.50:80", "\(header)")
        #expect((header["tlvs"] as? [String: String])?["0xD0"] == "spiffe://cluster.local/ns/payments/sa/checkout", "\(header)")

        // 3. A DENY for checkout: refused with no connection to the app.
        let before = ((try? String(contentsOfFile: dir + "/app.count", encoding: .utf8)) ?? "").count
        try PolicyReloadTests.denyCheckout.write(toFile: dir + "/policies/deny.yaml", atomically: true, encoding: .utf8)
        #expect(waitUntil(timeout: 5) { log().contains("configuration applied") && log().components(separatedBy: "configuration applied").count > 3 })
        Thread.sleep(forTimeInterval: 1.2)
        let denied = try whoami(podA, dest: "\(bIP):8080")
        #expect(denied["echoed"] as? String == "" || denied["error"] != nil, "\(denied)")
        #expect(((try? String(contentsOfFile: dir + "/app.count", encoding: .utf8)) ?? "").count == before, "the app was reached")
        try? FileManager.default.removeItem(atPath: dir + "/policies/deny.yaml")

        // 4. Malformed requests are NACKed and leak no descriptor.
        let fdsBefore = openFDs(proxy.processIdentifier)
        let garbage = agent!.send("raw ffff01 /var/run/netns/\(podA)")
        #expect((garbage["ack"] as? String)?.contains("cannot parse") == true, "\(garbage)")
        let notNetns = agent!.send("raw 0a0f0a0d4b756265726e657465732f2f78 /etc/hostname")
        #expect((notNetns["ack"] as? String)?.contains("not a network namespace") == true, "\(notNetns)")
        let twoFDs = agent!.send("raw 0a0f0a0d4b756265726e657465732f2f78 /var/run/netns/\(podA) /var/run/netns/\(podB)")
        #expect((twoFDs["ack"] as? String)?.contains("2 file descriptors") == true, "\(twoFDs)")
        let noFD = agent!.send("raw 0a0f0a0d4b756265726e657465732f2f78")
        #expect((noFD["ack"] as? String)?.contains("0 file descriptors") == true, "\(noFD)")
        #expect(openFDs(proxy.processIdentifier) == fdsBefore, "descriptors leaked")

        // 5. del B: its listeners go (nothing left in B's namespace).
        #expect(agent!.send("del Kubernetes//Pod/payments/ledger-0")["ack"] as? String == "")
        #expect(waitUntil(timeout: 5) {
            let (_, l) = (try? runProgram(ip, ["netns", "exec", podB, "ss", "-Htln"])) ?? (1, "")
            let (_, u) = (try? runProgram(ip, ["netns", "exec", podB, "ss", "-Huln"])) ?? (1, "")
            return !l.contains(":15008") && !l.contains(":15006") && !l.contains(":15001") && !l.contains(":15053") && !u.contains(":15053")
        })

        let afterDel = (try? runProgram(ip, ["netns", "exec", node, "curl", "-s", "http://127.0.0.1:15020/metrics"]).output) ?? ""
        #expect(afterDel.contains("workload_manager_proxies_stopped_total 1\n") && afterDel.contains("workload_manager_proxies_started_total 4\n"),
                "\(afterDel.split(separator: "\n").filter { $0.hasPrefix("workload_manager") })")

        // 6. The agent reconnects; its snapshot omits A: A is removed too.
        _ = agent!.send("close")
        #expect((agent!.send("wait")["hello"]) != nil)
        #expect(agent!.send("snapshot")["ack"] as? String == "")
        #expect(waitUntil(timeout: 5) {
            let (_, l) = (try? runProgram(ip, ["netns", "exec", podA, "ss", "-Htln"])) ?? (1, "")
            return !l.contains(":15008")
        })
        #expect(proxy.isRunning)
    }
}

/// Lifecycle settings a pod gives the proxy: its CPU set sizes the worker pool.
@Suite struct LifecycleSettingsTests {
    @Test func oneCPUInTheAffinityMaskGivesOneWorker() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else {
            Issue.record("taskset (util-linux) is missing")
            return
        }
        let dir = NSTemporaryDirectory() + "hbone-taskset-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
        hbone:
          node: east
          rootCertificates: \(TestPKI.path("bundle-root.pem"))
          certificates: {directory: \(TestPKI.path("certs-east"))}
          listen: {admin: "127.0.120.2:15000", metrics: "127.0.120.2:15020", readiness: "127.0.120.2:15021"}
        """.write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let log = dir + "/hbone.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        p.arguments = ["-c", "0", hboneBinary, "proxy", "--config", dir + "/c.yaml"]
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        defer {
            p.terminate()
            p.waitUntilExit()
        }
        let text = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        #expect(waitUntil(timeout: 10) { text().contains("hbone started") }, "\(text())")
        #expect(text().contains("hbone started workers=1 "), "\(text())")
    }
}
