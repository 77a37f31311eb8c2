import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `hbone validate` runs the proxy's start-up checks: for each broken config it fails exactly as
/// `hbone proxy` does (same exit status, same message), and says OK only to a config the proxy starts with.
@Suite(.serialized) struct ValidateTests {
    static let net = 114

    static func config(_ hbone: String, workloads: String = "") -> String {
        """
        \(workloads)
        hbone:
          node: west
        \(hbone)
        """
    }

    static var base: String {
        """
          rootCertificates: \(TestPKI.path("bundle-root.pem"))
          certificates: {directory: \(TestPKI.path("certs-west"))}
          listen: {admin: "127.0.\(net).3:15000", metrics: "127.0.\(net).3:15020", readiness: "127.0.\(net).3:15021"}
        """
    }

    /// Runs `args`; its exit status and its stderr's first line.
    func outcome(_ args: [String], timeout: Double = 10) throws -> (status: Int32, message: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: hboneBinary)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
            return (-1, "still running")
        }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, text.split(separator: "\n").first { $0.hasPrefix("hbone: ") && !$0.hasPrefix("hbone: warning") }.map(String.init) ?? "")
    }

    @Test func eachBrokenConfigFailsValidateAndProxyAlike() throws {
        let dir = NSTemporaryDirectory() + "hbone-validate-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A port held by someone else (not SO_REUSEPORT): the proxy could not bind it.
        let holder = listeningSocket("127.0.\(Self.net).3", 15099)
        #expect(holder >= 0)
        defer { close(holder) }
        let net = Self.net
        let cases: [(String, String, Int32, String)] = [
            ("unknown key", Self.config(Self.base + "\n  colour: blue"), 2, "invalid config:"),
            ("missing root file", Self.config("""
              rootCertificates: /nonexistent/root.pem
              certificates: {directory: \(TestPKI.path("certs-west"))}
            """), 1, "/nonexistent/root.pem"),
            ("cacerts key of another CA", Self.config("""
              certificates: {ca: \(dir)/mixed-ca}
            """, workloads: "workloads: [{name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: [\"127.0.\(net).20\"], protocol: HBONE, node: west}]"),
             1, "ca-key.pem does not belong"),
            ("two listeners on one address", Self.config("""
              rootCertificates: \(TestPKI.path("bundle-root.pem"))
              certificates: {directory: \(TestPKI.path("certs-west"))}
              listen: {admin: "127.0.\(net).3:15000", metrics: "127.0.\(net).3:15000", readiness: "127.0.\(net).3:15021"}
            """), 1, "both listen on 127.0.\(net).3:15000"),
            ("an address in use", Self.config("""
              rootCertificates: \(TestPKI.path("bundle-root.pem"))
              certificates: {directory: \(TestPKI.path("certs-west"))}
              listen: {admin: "127.0.\(net).3:15099", metrics: "127.0.\(net).3:15020", readiness: "127.0.\(net).3:15021"}
            """), 1, "cannot listen on 127.0.\(net).3:15099 (listen.admin)"),
            ("xDS without its root", Self.config(Self.base + "\n  xds: {address: \"https://127.0.0.1:15012\", rootCertificate: /nonexistent/istiod-root.pem}"),
             1, "xDS root certificate /nonexistent/istiod-root.pem"),
        ]
        // A cacerts directory whose key belongs to another CA.
        try FileManager.default.createDirectory(atPath: dir + "/mixed-ca", withIntermediateDirectories: true)
        for f in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
            try FileManager.default.copyItem(atPath: TestPKI.path("east/\(f)"), toPath: dir + "/mixed-ca/\(f)")
        }
        try FileManager.default.copyItem(atPath: TestPKI.path("west/ca-key.pem"), toPath: dir + "/mixed-ca/ca-key.pem")
        for (i, (name, text, status, fragment)) in cases.enumerated() {
            let file = dir + "/case-\(i).yaml"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let v = try outcome(["validate", "--config", file])
            let p = try outcome(["proxy", "--config", file, "--workers", "1"])
            #expect(v.status == status && p.status == status, "\(name): validate \(v.status), proxy \(p.status)")
            #expect(v.message == p.message, "\(name): validate said \"\(v.message)\", proxy said \"\(p.message)\"")
            #expect(v.message.contains(fragment), "\(name): \(v.message)")
        }
        // A good one: OK, with the missing SVID of a local workload as a warning (the proxy starts
        // and reports it in readiness).
        let good = dir + "/good.yaml"
        try Self.config(Self.base, workloads: "workloads: [{name: x-0, namespace: nowhere, serviceAccount: x, workloadIps: [\"127.0.\(net).30\"], protocol: HBONE, node: west}]")
            .write(toFile: good, atomically: true, encoding: .utf8)
        let (status, output) = try runProgram(hboneBinary, ["validate", "--config", good], includeErrors: true)
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK (1 workloads, 1 local") && output.contains("hbone: warning: no usable certificate"), "\(output)")
    }
}
