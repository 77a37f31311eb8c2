import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two "nodes" as network namespaces joined by a veth pair, a proxy in each, capture rules from
/// scripts/capture.sh: unmodified clients reach servers by plain IP and port. Needs root, ip and
/// iptables; reported as skipped otherwise.
let captureTestsCanRun: Bool = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables")
    && (FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/usr/bin/ip"))

@Suite(.serialized, .enabled(if: captureTestsCanRun, "needs root, ip netns and iptables"))
struct CaptureTests {
    let a = "hbtest-a-\(getpid())", b = "hbtest-b-\(getpid())"
    let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/usr/bin/ip"

    func sh(_ args: [String]) -> Int32 { run(ip, args) }
    func inNS(_ ns: String, _ args: [String]) -> Int32 { run(ip, ["netns", "exec", ns] + args) }

    func config(node: String, certs: String, policyDir: String) -> String {
        """
        workloads:
        - {uid: east//checkout-0, name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.77.0.10"], protocol: HBONE, node: east}
        - {uid: west//ledger-0, name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.77.0.20"], protocol: HBONE, node: west}
        hbone:
          node: \(node)
          rootCertificates: \(TestPKI.path("bundle-root.pem"))
          certificates: {directory: \(TestPKI.path(certs))}
          authorizationPolicies: ["\(policyDir)"]
          outboundMark: 1337
          listen:
            outboundCapture: 0.0.0.0:15001
            inboundPlaintext: 0.0.0.0:15006
            admin: 127.0.0.1:15000
            metrics: 127.0.0.1:15020
            readiness: 127.0.0.1:15021
        """
    }

    func client(_ ns: String, dest: String, mark: Int? = nil) throws -> [String: Any] {
        try runJSON(ip, ["netns", "exec", ns, "python3", repositoryRoot + "/scripts/lib/plain_client.py", "--source", "10.77.0.10", "--dest", dest]
                        + (mark.map { ["--mark", "\($0)"] } ?? []))
    }

    @Test func unmodifiedClientIsCapturedTunnelledAndAuthorized() throws {
        let dir = NSTemporaryDirectory() + "hbone-capture-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        var processes: [Process] = []
        // Everything created here is removed at the end, also when an expectation fails.
        defer {
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            for p in processes { p.waitUntilExit() }
            _ = inNS(a, [repositoryRoot + "/scripts/capture.sh", "--remove"])
            _ = inNS(b, [repositoryRoot + "/scripts/capture.sh", "--remove"])
            _ = sh(["netns", "del", a])
            _ = sh(["netns", "del", b])
        }
        for ns in [a, b] { #expect(sh(["netns", "add", ns]) == 0) }
        #expect(sh(["link", "add", "hbva\(getpid() % 10000)", "netns", a, "type", "veth", "peer", "name", "hbvb\(getpid() % 10000)", "netns", b]) == 0)
        let va = "hbva\(getpid() % 10000)", vb = "hbvb\(getpid() % 10000)"
        for (ns, dev, node, workload) in [(a, va, "10.77.0.1/24", "10.77.0.10/24"), (b, vb, "10.77.0.2/24", "10.77.0.20/24")] {
            #expect(inNS(ns, ["ip", "link", "set", "lo", "up"]) == 0)
            #expect(inNS(ns, ["ip", "addr", "add", node, "dev", dev]) == 0)
            #expect(inNS(ns, ["ip", "addr", "add", workload, "dev", dev]) == 0)
            #expect(inNS(ns, ["ip", "link", "set", dev, "up"]) == 0)
        }
        for ns in [a, b] {
            #expect(inNS(ns, [repositoryRoot + "/scripts/capture.sh", "--mark", "1337", "--workload-cidr", "10.77.0.0/24"]) == 0)
            // Idempotent: a second run leaves one set of rules.
            #expect(inNS(ns, [repositoryRoot + "/scripts/capture.sh", "--mark", "1337", "--workload-cidr", "10.77.0.0/24"]) == 0)
        }
        try config(node: "east", certs: "certs-east", policyDir: dir + "/policies").write(toFile: dir + "/east.yaml", atomically: true, encoding: .utf8)
        try config(node: "west", certs: "certs-west", policyDir: dir + "/policies").write(toFile: dir + "/west.yaml", atomically: true, encoding: .utf8)
        let binary = hboneBinary
        func start(_ ns: String, _ args: [String], log: String) throws {
            processes.append(try startInNamespace(ip: ip, ns, args, log: log))
        }
        try start(b, ["python3", repositoryRoot + "/scripts/lib/echo_server.py", "10.77.0.20", "8080", "--ready-file", dir + "/echo.ready"],
                  log: dir + "/echo.log")
        try start(b, [binary, "proxy", "--config", dir + "/west.yaml", "--workers", "2"], log: dir + "/west.log")
        try start(a, [binary, "proxy", "--config", dir + "/east.yaml", "--workers", "2"], log: dir + "/east.log")
        let westLog = { (try? String(contentsOfFile: dir + "/west.log", encoding: .utf8)) ?? "" }
        let eastLog = { (try? String(contentsOfFile: dir + "/east.log", encoding: .utf8)) ?? "" }
        #expect(waitUntil(timeout: 15) {
            westLog().contains("hbone started") && eastLog().contains("hbone started") && FileManager.default.fileExists(atPath: dir + "/echo.ready")
        })

        // 1. Outbound capture → HBONE → west → the server, with no SOCKS5 and no client change.
        let r = try client(a, dest: "10.77.0.20:8080")
        #expect(r["echoed"] as? String == "hello through capture", "\(r)")
        #expect(waitUntil(timeout: 5) { westLog().contains("src.identity=spiffe://cluster.local/ns/payments/sa/checkout") }, "\(westLog())")
        #expect(westLog().contains("direction=inbound"))
        // ztunnel's fields: dst.addr is the peer's HBONE port, dst.hbone_addr the target in the tunnel.
        #expect(eastLog().contains("dst.addr=10.77.0.20:15008 dst.hbone_addr=10.77.0.20:8080"), "\(eastLog())")

        // 2. A client that bypasses capture on its own node reaches west in plaintext: 15006, no identity.
        let plain = try client(a, dest: "10.77.0.20:8080", mark: 1337)
        #expect(plain["echoed"] as? String == "hello through capture", "\(plain)")

        // 3. A DENY policy for checkout now blocks the same captured connection.
        try PolicyReloadTests.denyCheckout.write(toFile: dir + "/policies/deny.yaml", atomically: true, encoding: .utf8)
        #expect(waitUntil(timeout: 5) { westLog().contains("configuration applied") })
        let denied = try client(a, dest: "10.77.0.20:8080")
        #expect(denied["echoed"] as? String == "" || denied["error"] != nil, "\(denied)")
        #expect(waitUntil(timeout: 5) { westLog().contains("401: authorization denied: DENY policy payments/deny-checkout matched") })
    }
}
