import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `hbone` under test: the debug build, or `HBONE_BINARY` (scripts/test.sh --sanitize runs the
/// integration suite against a sanitized build this way).
let hboneBinary = ProcessInfo.processInfo.environment["HBONE_BINARY"] ?? repositoryRoot + "/.build/debug/hbone"

/// Two real `hbone` processes (east, west) plus an echo app behind west, on a /24 of 127.0.0.0/8
/// of the test's own, so suites never collide.
final class Mesh {
    let net: Int
    let dir: String
    var processes: [Process] = []
    let binary = hboneBinary

    var eastIP: String { "127.0.\(net).10" }
    var westIP: String { "127.0.\(net).20" }
    var eastSocks: String { "127.0.\(net).2:15080" }
    var echo: String { "\(westIP):8080" }
    var eastLog: String { dir + "/east.log" }
    var eastAdmin: String { "127.0.\(net).2" }
    var westAdmin: String { "127.0.\(net).3" }
    var westLog: String { dir + "/west.log" }

    struct Options {
        var eastCertificates = "certs-east"
        var westCertificates = "certs-west"
        var eastBundle = "bundle-root.pem"
        var westBundle = "bundle-root.pem"
        var ledgerServiceAccountSeenByEast = "ledger"
        var westExtra = ""
        var westPolicies = ""
        /// nil: no --log-level flag (the environment's RUST_LOG, else info).
        var logLevel: String? = "info"
        /// Issue SVIDs in the proxy from these cacerts directories (absolute), with this TTL.
        var eastCA: String? = nil
        var westCA: String? = nil
        var caTTL = "24h"
        /// Extra environment variables for the west proxy.
        var westEnvironment: [String: String] = [:]
        /// Runs east with RLIMIT_NOFILE at this (soft and hard), through prlimit.
        var eastFileLimit: Int? = nil
        var eastExtra = ""
        /// East's worker loops (each loop has its own pool).
        var eastWorkers = 2
        /// Workloads, services, policies and SVIDs come only from this control plane (no file
        /// workloads; `certificates.istioCA`); each node's bearer token is `token-<node>`.
        var controlPlane: FakeIstiod? = nil
        /// Extra `hbone.xds` lines (indented four spaces) with a control plane.
        var xdsExtra = ""
        var eastEnvironment: [String: String] = [:]
        /// With a control plane: no root file; the roots come with the CA's answers.
        var trustFromCA = false
        /// Extra keys of the ledger workload (indented six spaces), e.g. labels; and top-level
        /// sections (services) placed before `hbone:`, in both nodes' files.
        var ledgerExtra = ""
        var topLevel = ""
    }

    /// `eastOnly`: no west proxy and no echo app (a test brings its own west).
    init(net: Int, _ options: Options = Options(), eastOnly: Bool = false) throws {
        self.net = net
        dir = NSTemporaryDirectory() + "hbone-mesh-\(net)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let pki = TestPKI.directory
        func under(_ p: String) -> String { p.hasPrefix("/") ? p : "\(pki)/\(p)" }
        if let cp = options.controlPlane {
            for (node, socks, extra) in [("east", "127.0.\(net).2", options.eastExtra), ("west", "127.0.\(net).3", options.westExtra)] {
                try "token-\(node)\n".write(toFile: dir + "/token-\(node)", atomically: true, encoding: .utf8)
                try controlPlaneConfig(node: node, socks: socks, istiod: cp, bundle: under("bundle-root.pem"), xdsExtra: options.xdsExtra,
                                       extra: extra, trustFromCA: options.trustFromCA)
                    .write(toFile: dir + "/\(node).yaml", atomically: true, encoding: .utf8)
            }
        } else {
            try config(node: "east", socks: "127.0.\(net).2", certs: under(options.eastCertificates), bundle: under(options.eastBundle),
                       ledgerSA: options.ledgerServiceAccountSeenByEast, extra: options.eastExtra, policies: options.topLevel, ca: options.eastCA,
                       ttl: options.caTTL, ledgerExtra: options.ledgerExtra)
                .write(toFile: dir + "/east.yaml", atomically: true, encoding: .utf8)
            try config(node: "west", socks: "127.0.\(net).3", certs: under(options.westCertificates), bundle: under(options.westBundle),
                       ledgerSA: "ledger", extra: options.westExtra, policies: options.westPolicies + "\n" + options.topLevel, ca: options.westCA,
                       ttl: options.caTTL, ledgerExtra: options.ledgerExtra)
                .write(toFile: dir + "/west.yaml", atomically: true, encoding: .utf8)
        }
        if !eastOnly {
            try start("/usr/bin/env", ["python3", repositoryRoot + "/scripts/lib/echo_server.py", westIP, "8080"], log: dir + "/echo.log")
            try start(binary, ["proxy", "--config", dir + "/west.yaml", "--workers", "2"] + (options.logLevel.map { ["--log-level", $0] } ?? []), log: westLog,
                      environment: options.westEnvironment)
        }
        let eastArguments = ["proxy", "--config", dir + "/east.yaml", "--workers", "\(options.eastWorkers)"] + (options.logLevel.map { ["--log-level", $0] } ?? [])
        if let limit = options.eastFileLimit {
            try start("/usr/bin/prlimit", ["--nofile=\(limit):\(limit)", binary] + eastArguments, log: eastLog)
        } else {
            try start(binary, eastArguments, log: eastLog, environment: options.eastEnvironment)
        }
        for (host, port) in (eastOnly ? [] : [(westIP, 8080), (westIP, 15008)]) + [("127.0.\(net).2", 15080)] {
            guard waitForPort(host, port) else { throw MeshError("nothing listens on \(host):\(port); logs in \(dir)") }
        }
    }

    func config(node: String, socks: String, certs: String, bundle: String, ledgerSA: String, extra: String, policies: String,
                ca: String? = nil, ttl: String = "24h", ledgerExtra: String = "") -> String {
        let certificates = ca.map { "ca: \($0)\n    ttl: \(ttl)\n    rotationGracePeriodRatio: 0.5" } ?? "directory: \(certs)"
        return """
        workloads:
        - uid: west//ledger-0
          name: ledger-0
          namespace: payments
          serviceAccount: \(ledgerSA)
          workloadIps: ["\(westIP)"]
          protocol: HBONE
          node: west
        \(ledgerExtra)
        - uid: east//checkout-0
          name: checkout-0
          namespace: payments
          serviceAccount: checkout
          workloadIps: ["\(eastIP)"]
          protocol: HBONE
          node: east
        \(policies)
        hbone:
          node: \(node)
          trustDomain: cluster.local
          rootCertificates: \(bundle)
          certificates:
            \(certificates)
          listen:
            socks5: \(socks):15080
            admin: \(socks):15000
            metrics: \(socks):15020
            readiness: \(socks):15021
        \(extra)
        """
    }

    /// A node configured only by the control plane: no workloads in the file, SVIDs from the Istio CA.
    func controlPlaneConfig(node: String, socks: String, istiod: FakeIstiod, bundle: String, xdsExtra: String, extra: String,
                            trustFromCA: Bool = false) -> String {
        """
        hbone:
          node: \(node)
          trustDomain: cluster.local
        \(trustFromCA ? "" : "  rootCertificates: \(bundle)")
          certificates:
            istioCA: true
          xds:
            address: \(istiod.address)
            rootCertificate: \(bundle)
            authToken: \(dir)/token-\(node)
        \(xdsExtra)
          ca:
            address: \(istiod.address)
            rootCertificate: \(bundle)
          listen:
            socks5: \(socks):15080
            admin: \(socks):15000
            metrics: \(socks):15020
            readiness: \(socks):15021
        \(extra)
        """
    }

    /// `/healthz/ready`'s status and body on a proxy's readiness port.
    func readiness(_ admin: String) -> (status: Int, body: String) {
        let (_, out) = (try? runProgram("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "http://\(admin):15021/healthz/ready"])) ?? (1, "")
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// The admin `/config_dump` of a proxy.
    func configDump(_ admin: String) -> [String: Any] {
        ((try? runJSON("/usr/bin/curl", ["-s", "http://\(admin):15000/config_dump"])) ?? [:])
    }

    func start(_ program: String, _ args: [String], log: String, environment: [String: String] = [:]) throws {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.standardError = FileHandle(forWritingAtPath: log)
        p.standardOutput = FileHandle(forWritingAtPath: log)
        try p.run()
        processes.append(p)
    }

    /// Runs the Python tunnel client and returns its JSON result.
    func client(_ mode: String, dest: String? = nil, source: String? = nil, _ extra: [String] = [], environment: [String: String] = [:]) throws -> [String: Any] {
        try startClient(mode, dest: dest, source: source, extra, environment: environment).result()
    }

    /// Starts the Python tunnel client in the background (through east's SOCKS5).
    func startClient(_ mode: String, dest: String? = nil, source: String? = nil, _ extra: [String] = [], environment: [String: String] = [:]) throws -> BackgroundClient {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repositoryRoot + "/scripts/lib/tunnel_client.py", mode, "--socks", eastSocks,
                       "--source", source ?? eastIP, "--dest", dest ?? echo] + extra
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        return BackgroundClient(mode: mode, process: p, pipe: pipe)
    }

    func log(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// One sample of a proxy's /metrics, by its exact name and labels (`name{labels}`); nil if absent.
    func metric(admin: String, _ line: String) -> Int? {
        let (_, text) = (try? runProgram("/usr/bin/curl", ["-s", "http://\(admin):15020/metrics"])) ?? (1, "")
        for l in text.split(separator: "\n") where l.hasPrefix(line + " ") {
            return Int(Double(l.split(separator: " ").last ?? "") ?? -1)
        }
        return nil
    }

    /// Waits until a metric sample satisfies `predicate` (the proxy reports what the test waits for).
    func waitForMetric(admin: String, _ line: String, timeout: Double = 10, _ predicate: (Int) -> Bool) -> Bool {
        waitUntil(timeout: timeout) { metric(admin: admin, line).map(predicate) ?? false }
    }

    /// Waits until `predicate` holds for the log at `path` (log lines are written at connection end).
    func waitForLog(_ path: String, timeout: Double = 5, _ predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(log(path)) { return true }
            usleep(50_000)
        }
        return predicate(log(path))
    }

    func rssKiB(of index: Int) -> Int {
        let pid = processes[index].processIdentifier
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    func stop() {
        guard !processes.isEmpty else { return }
        // Proxies get SIGTERM (their drain path); helper scripts are killed outright.
        for p in processes.reversed() where p.isRunning {
            if p.executableURL?.path == binary || p.executableURL?.path == "/usr/bin/prlimit" { p.terminate() } else { kill(p.processIdentifier, SIGKILL) }
        }
        for p in processes { p.waitUntilExit() }
        processes = []
        // A sanitized proxy reports what it found in its log: that fails the test that ran it.
        for path in [eastLog, westLog] {
            let text = log(path)
            for marker in ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", "runtime error:"] where text.contains(marker) {
                let start = text.range(of: marker)!.lowerBound
                Issue.record("\(marker) in \(path):\n\(text[start...].prefix(4000))")
            }
        }
    }

    deinit { stop() }
}

/// A tunnel client running in the background.
struct BackgroundClient {
    let mode: String
    let process: Process
    let pipe: Pipe

    /// Waits for the client and decodes the JSON object on its last output line.
    func result() throws -> [String: Any] {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw MeshError("client \(mode) printed no result (exit \(process.terminationStatus))")
        }
        return obj
    }
}

/// A fresh, empty directory for a proxy's `authorizationPolicies`, and the `hbone:` line naming it.
func policyDirectory(_ name: String) throws -> (path: String, setting: String) {
    let path = NSTemporaryDirectory() + "hbone-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return (path, "  authorizationPolicies: [\"\(path)\"]")
}

struct MeshError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a program to completion: its exit status and standard output (and standard error, when
/// `includeErrors`; otherwise that is discarded).
func runProgram(_ program: String, _ arguments: [String], includeErrors: Bool = false) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = includeErrors ? pipe : FileHandle.nullDevice
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Runs a program to completion and decodes the JSON object it prints on stdout.
func runJSON(_ program: String, _ arguments: [String]) throws -> [String: Any] {
    let output = try runProgram(program, arguments).output
    return try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] ?? [:]
}

/// Calls `body` with host:port as an IPv4 `sockaddr` and its length.
func withIPv4Address<R>(_ host: String, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, host, &addr.sin_addr)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
}

/// A blocking IPv4 TCP socket connected to host:port whose reads give up after `receiveTimeout`
/// seconds (a test waiting for a proxy to close on it must not hang); -1 if the connect failed.
func connectedSocket(_ host: String, _ port: UInt16, receiveTimeout: Int = 5) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var tv = timeval(tv_sec: receiveTimeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard withIPv4Address(host, port, { connect(fd, $0, $1) }) == 0 else {
        close(fd)
        return -1
    }
    return fd
}

/// A plain listening IPv4 socket (no SO_REUSEPORT) that never accepts: a port someone else holds,
/// or a server that says nothing. -1 if it cannot be bound.
func listeningSocket(_ host: String, _ port: UInt16, backlog: Int32 = 4) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard withIPv4Address(host, port, { bind(fd, $0, $1) }) == 0, listen(fd, backlog) == 0 else {
        close(fd)
        return -1
    }
    return fd
}

/// Starts `args` inside network namespace `ns` (`ip netns exec`), output to `log`.
func startInNamespace(ip: String, _ ns: String, _ args: [String], log: String) throws -> Process {
    FileManager.default.createFile(atPath: log, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: ip)
    p.arguments = ["netns", "exec", ns] + args
    p.standardError = FileHandle(forWritingAtPath: log)
    p.standardOutput = FileHandle(forWritingAtPath: log)
    try p.run()
    return p
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

func waitForPort(_ host: String, _ port: Int, timeout: Double = 15) -> Bool {
    waitUntil(timeout: timeout) {
        let fd = connectedSocket(host, UInt16(port))
        if fd >= 0 { close(fd) }
        return fd >= 0
    }
}
