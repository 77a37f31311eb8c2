import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// ztunnel's /debug/pprof/profile on a real proxy: a CPU profile of the process under load, in
/// the pprof format that `go tool pprof` (and an independent wire decoder) read.
@Suite(.serialized) struct ProfileTests {
    /// (HTTP status, path of the body).
    func fetch(_ url: String, _ name: String, maxSeconds: Int = 30) throws -> (Int, String) {
        let path = NSTemporaryDirectory() + "hbone-profile-\(getpid())-\(name)"
        let (_, code) = try runProgram("/usr/bin/curl", ["-s", "-m", "\(maxSeconds)", "-o", path, "-w", "%{http_code}", url])
        return (Int(code) ?? 0, path)
    }

    @Test func aProfileUnderLoadNamesTheProxysFunctions() throws {
        let mesh = try Mesh(net: 131)
        defer { mesh.stop() }
        let base = "http://\(mesh.westAdmin):15000/debug/pprof/profile"
        #expect(try fetch(base + "?seconds=0", "bad").0 == 400)
        #expect(try fetch(base + "?seconds=2&frequency=5000", "bad").0 == 400)
        #expect(try fetch(base + "?seconds=ten", "bad").0 == 400)

        let profiling = Process()
        let path = NSTemporaryDirectory() + "hbone-profile-\(getpid())-cpu"
        profiling.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        profiling.arguments = ["-s", "-m", "30", "-o", path, "-w", "%{http_code}", base + "?seconds=3&frequency=500"]
        let status = Pipe()
        profiling.standardOutput = status
        try profiling.run()
        Thread.sleep(forTimeInterval: 0.5)
        // One profile at a time.
        let (busy, busyBody) = try fetch(base + "?seconds=1", "busy")
        #expect(busy == 409, "\(busy)")
        #expect((try? String(contentsOfFile: busyBody, encoding: .utf8))?.contains("already being taken") == true)
        // Bulk through west (TLS, HTTP/2 and the relay) while it is being profiled.
        let load = try mesh.client("echo", ["--size", "100000000"])
        #expect(load["intact"] as? Bool == true)
        profiling.waitUntilExit()
        let code = String(decoding: status.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(code == "200", "\(code)")
        defer { try? FileManager.default.removeItem(atPath: path) }

        let report = try runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/pprof_check.py", path])
        #expect(report["first_string_empty"] as? Bool == true)
        #expect(report["sample_types"] as? [String] == ["samples/count", "cpu/nanoseconds"])
        #expect(report["period_type"] as? String == "cpu/nanoseconds" && report["period"] as? Int == 2_000_000, "\(report)")
        #expect((report["samples"] as? Int ?? 0) >= 10, "\(report)")
        print("profile under load: \(report)")
        for check in ["values_consistent", "locations_defined", "mappings_defined", "functions_defined"] {
            #expect(report[check] as? Bool == true, "\(check): \(report)")
        }
        let threads = report["threads"] as? [String] ?? []
        #expect(threads.contains { $0.hasPrefix("hbone-worker") }, "\(threads)")
        let functions = report["functions"] as? [String] ?? []
        // Our own code, by its Swift name, and the libraries by their exported names.
        #expect(functions.contains { $0.hasPrefix("HBONEProxy.") }, "\(functions.prefix(40))")
        #expect(functions.contains { $0.hasPrefix("HBONEEventLoop.EventLoop.run") }, "\(functions.prefix(40))")
        #expect(functions.contains { $0.hasPrefix("SSL_") }, "\(functions.prefix(40))")
        #expect((report["mapping_files"] as? [String] ?? []).contains { $0.hasSuffix("/hbone") }, "\(report)")
        #expect(!(report["build_ids"] as? [String] ?? []).isEmpty, "\(report)")

        // The reader operators use (scripts/test.sh installs Debian's golang-go).
        let (rc, top) = try runProgram("/usr/bin/env", ["go", "tool", "pprof", "-top", "-nodecount=400", path], includeErrors: true)
        #expect(rc == 0, "go tool pprof: \(top.prefix(2000))")
        #expect(top.contains("Type: cpu") && top.contains("HBONEProxy.") && top.contains("SSL_"), "\(top.prefix(3000))")

        // A client that leaves before its profile is done frees the profiler at once.
        _ = try? fetch(base + "?seconds=20", "abandoned", maxSeconds: 1)
        Thread.sleep(forTimeInterval: 0.3)
        let (again, againPath) = try fetch(base + "?seconds=1", "again")
        #expect(again == 200, "\(again)")
        try? FileManager.default.removeItem(atPath: againPath)
        #expect(mesh.log(mesh.westLog).contains("CPU profile abandoned"), "\(mesh.log(mesh.westLog).suffix(1500))")
    }
}
