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

    /// ztunnel's /debug/pprof/heap and /debug/pprof/heap/profiling on a real proxy: off until
    /// activated; then the allocations a stalled tunnel holds are in the profile, named, in
    /// about the amount the heap grew by, and leave it once the tunnel closes.
    @Test func aHeapProfileShowsWhatTheProxyHolds() throws {
        let mesh = try Mesh(net: 135)
        defer { mesh.stop() }
        let admin = "http://\(mesh.eastAdmin):15000"
        func text(_ url: String, method: String = "GET") throws -> (Int, String) {
            let (rc, out) = try runProgram("/usr/bin/curl", ["-s", "-m", "20", "-X", method, "-w", "\n%{http_code}", url])
            let lines = rc == 0 ? out.split(separator: "\n", omittingEmptySubsequences: false) : []
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
        }
        func heapInUse() throws -> Int {
            let (_, body) = try text(admin + "/memory")
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            return json?["heap_in_use_bytes"] as? Int ?? 0
        }

        var (code, body) = try text(admin + "/debug/pprof/heap")
        // A sanitizer's own malloc leaves no room for the sampler: the build says so.
        if ProcessInfo.processInfo.environment["HBONE_SANITIZED"] != nil {
            #expect(code == 500 && body.contains("not built into this binary"), "\(code) \(body)")
            (code, body) = try text(admin + "/debug/pprof/heap/profiling?activate=true", method: "POST")
            #expect(code == 500 && body.contains("not built into this binary"), "\(code) \(body)")
            return
        }
        #expect(code == 500 && body.contains("heap profiling not active; activate with /debug/pprof/heap/profiling?activate=true"), "\(code) \(body)")
        #expect(try text(admin + "/debug/pprof/heap/profiling") == (200, "heap profiling active: false"))
        (code, body) = try text(admin + "/debug/pprof/heap/profiling?activate=maybe")
        #expect(code == 400 && body.contains("expected true or false"), "\(body)")
        #expect(try text(admin + "/debug/pprof/heap", method: "POST").0 == 405)
        // As ztunnel's, a plain GET toggles it (what its message tells operators to run).
        #expect(try text(admin + "/debug/pprof/heap/profiling?activate=true") == (200, "heap profiling active: true"))

        // Clients that send and never read: east buffers what the flow-control windows allow,
        // some MiB in all (a few dozen samples). How soon they fill depends on the host: wait
        // for 8 MiB (10–11 in most runs), up to 6.5 s of the clients' 9-s hold.
        let before = try heapInUse()
        let stalled = try (0..<8).map { _ in try mesh.startClient("slow", ["--size", "\(256 << 20)"], environment: ["SLOW_HOLD": "9"]) }
        var grown = 0
        _ = waitUntil(timeout: 6.5) {
            grown = ((try? heapInUse()) ?? before) - before
            return grown > 8 << 20
        }
        let (fetched, path) = try fetch(admin + "/debug/pprof/heap", "heap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(fetched == 200)
        let report = try runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/pprof_check.py", path])
        print("heap profile of a stalled tunnel: heap grew \(grown) bytes; \(report)")
        #expect(report["sample_types"] as? [String] == ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"], "\(report)")
        #expect(report["period_type"] as? String == "space/bytes" && report["period"] as? Int == 524_288, "\(report)")
        for check in ["values_consistent", "locations_defined", "mappings_defined", "functions_defined"] {
            #expect(report[check] as? Bool == true, "\(check): \(report)")
        }
        let totals = report["totals"] as? [Int] ?? []
        let estimate = totals.last ?? 0
        #expect(totals.count == 4 && totals[1] >= totals[3], "allocated \(totals)")
        // At least a dozen samples' worth, so the estimate's band below holds with room.
        #expect(grown > 6 << 20, "the stalled tunnels held \(grown) bytes")
        // About one sample per 512 KiB: the estimate comes within a factor of the growth.
        #expect(Double(estimate) > 0.4 * Double(grown) && Double(estimate) < 2.5 * Double(grown), "estimate \(estimate) for \(grown) bytes grown")
        let functions = report["functions"] as? [String] ?? []
        #expect(functions.contains { $0.hasPrefix("HBONE") }, "\(functions.prefix(40))")
        let (rc, top) = try runProgram("/usr/bin/env", ["go", "tool", "pprof", "-top", "-nodecount=200", path], includeErrors: true)
        #expect(rc == 0 && top.contains("Type: inuse_space"), "go tool pprof: \(top.prefix(2000))")
        let (rcAlloc, allocated) = try runProgram("/usr/bin/env", ["go", "tool", "pprof", "-top", "-sample_index=alloc_space", path], includeErrors: true)
        #expect(rcAlloc == 0 && allocated.contains("Type: alloc_space"), "go tool pprof: \(allocated.prefix(2000))")

        // Once the tunnels are gone, so are their samples.
        for client in stalled { _ = try client.result() }
        #expect(waitUntil(timeout: 10) {
            guard (try? fetch(admin + "/debug/pprof/heap", "heap"))?.0 == 200, let r = try? runJSON("/usr/bin/python3", [repositoryRoot + "/scripts/lib/pprof_check.py", path]) else { return false }
            let left = (r["totals"] as? [Int])?.last ?? .max
            print("heap profile after the tunnels closed: \(left) bytes, heap \((try? heapInUse()) ?? 0)")
            return left < estimate / 2
        }, "the stalled tunnels' buffers are still in the profile")
        #expect(try text(admin + "/debug/pprof/heap/profiling?activate=false", method: "POST") == (200, "heap profiling active: false"))
        #expect(mesh.log(mesh.eastLog).contains("heap profiling activated"))
    }
}
