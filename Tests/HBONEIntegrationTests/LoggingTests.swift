import Foundation
import Testing
import HBONETestSupport

/// ztunnel's logging variables, as Istio's chart sets them (`logLevel` → RUST_LOG, `logAsJson` →
/// LOG_FORMAT=json), on a real proxy.
@Suite(.serialized) struct LoggingTests {
    @Test func rustLogAndLogFormatSetTheLevelsAndTheFormat() throws {
        var o = Mesh.Options()
        o.logLevel = nil
        o.westEnvironment = ["RUST_LOG": "warn,access=info,hickory_server::server=off", "LOG_FORMAT": "json"]
        let mesh = try Mesh(net: 132, o)
        defer { mesh.stop() }
        #expect(try mesh.client("echo", ["--size", "100"])["intact"] as? Bool == true)
        Thread.sleep(forTimeInterval: 0.3)
        let lines = mesh.log(mesh.westLog).split(separator: "\n").filter { $0.hasPrefix("{") }
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(!objects.isEmpty && objects.count == lines.count, "\(mesh.log(mesh.westLog).prefix(2000))")
        // Info lines of the proxy's own scope are held back; the access log (info) is not; the
        // ignored target is named once, as a warning.
        #expect(!objects.contains { ($0["message"] as? String ?? $0["msg"] as? String) == "hbone started" }, "\(objects.prefix(5))")
        #expect(objects.contains { "\($0)".contains("connection complete") }, "\(objects.prefix(5))")
        #expect(objects.contains { "\($0)".contains("hickory_server::server") }, "\(objects.prefix(5))")
        // The admin API shows what the variable set.
        let (_, levels) = try runProgram("/usr/bin/curl", ["-s", "-X", "POST", "http://\(mesh.westAdmin):15000/logging"])
        #expect(levels == "levels: hbone:warn,access:info\n", "\(levels)")
    }

    /// A RUST_LOG that does not parse stops start-up with the directive and why (exit 2).
    @Test func aBadRustLogStopsStartUp() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: hboneBinary)
        p.arguments = ["proxy", "--config", "/nonexistent.yaml"]
        p.environment = ProcessInfo.processInfo.environment.merging(["RUST_LOG": "info,access=loud"]) { $1 }
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = Pipe()
        try p.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 2)
        #expect(text.contains("environment RUST_LOG directive \"access=loud\": \"loud\" is not a level"), "\(text)")
    }
}
