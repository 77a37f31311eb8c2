import HBONECore
import HBONEProfile

extension AdminRoutes {
    /// ztunnel's /debug/pprof/profile: sample the whole process for `seconds` (1-300, default 10)
    /// at `frequency` (1-1000 Hz, default 100, Go's rate), then answer the pprof protobuf, which
    /// `go tool pprof http://localhost:15000/debug/pprof/profile` reads. One profile at a time.
    func profile(_ request: HTTPRequestParser.Request) -> Answer {
        guard let seconds = Self.parameter(request.query["seconds"], default: 10, in: 1...300) else {
            return .now(Response(status: 400, contentType: "text/plain", body: "invalid seconds value; expected 1-300\n"))
        }
        guard let frequency = Self.parameter(request.query["frequency"], default: 100, in: 1...1000) else {
            return .now(Response(status: 400, contentType: "text/plain", body: "invalid frequency value; expected 1-1000\n"))
        }
        let profiler: CPUProfiler
        do {
            profiler = try CPUProfiler.start(frequency: frequency)
        } catch {
            return .now(Response(status: error == .busy ? 409 : 500, contentType: "text/plain", body: "\(error)\n"))
        }
        log.info("CPU profile started", ["seconds": "\(seconds)", "frequency_hz": "\(frequency)"])
        return .later(Deferred(
            duration: UInt64(seconds) * 1_000_000_000,
            // The signal handlers' ring holds 2048 samples: 50 ms of 1000 Hz on 40 busy cores.
            tickInterval: 50_000_000,
            tick: { profiler.drain() },
            complete: {
                let profile = profiler.stop()
                let bytes = profile.pprof()
                log.info("CPU profile taken", ["samples": "\(profile.sampleCount)", "dropped": "\(profile.dropped)", "bytes": "\(bytes.count)"])
                return Response(status: 200, contentType: "application/octet-stream", bytes: bytes,
                                headers: ["Content-Disposition": "attachment; filename=\"profile.pb\""])
            },
            cancel: {
                let profile = profiler.stop()
                log.info("CPU profile abandoned: the client closed its connection", ["samples": "\(profile.sampleCount)"])
            }))
    }

    /// ztunnel's /debug/pprof/heap: the allocations sampled while heap profiling was active, those
    /// not freed since (inuse_*) and all of them (alloc_*), in pprof's format
    /// (`go tool pprof http://localhost:15000/debug/pprof/heap`).
    /// As ztunnel, an error until profiling is activated (/debug/pprof/heap/profiling?activate=true).
    func heapProfile() -> Response {
        let status = HeapProfiler.status
        guard status.available else {
            return Response(status: 500, contentType: "text/plain", body: "\(HeapProfiler.ActivationError.unavailable)\n")
        }
        guard status.active else {
            return Response(status: 500, contentType: "text/plain",
                            body: "heap profiling not active; activate with /debug/pprof/heap/profiling?activate=true\n")
        }
        let profile = HeapProfiler.snapshot()
        let bytes = profile.pprof()
        log.info("heap profile taken", ["stacks": "\(profile.stacks.count)", "estimated_live_bytes": "\(profile.liveBytes)",
                                        "dropped": "\(profile.dropped)", "bytes": "\(bytes.count)"])
        return Response(status: 200, contentType: "application/octet-stream", bytes: bytes,
                        headers: ["Content-Disposition": "attachment; filename=\"heap.pb\""])
    }

    /// ztunnel's /debug/pprof/heap/profiling: `?activate=true|false` starts or stops sampling
    /// (one allocation per 512 KiB allocated, on average); without it, says whether it is on.
    func heapProfiling(_ request: HTTPRequestParser.Request) -> Response {
        if let value = request.query["activate"] {
            guard value == "true" || value == "false" else {
                return Response(status: 400, contentType: "text/plain", body: "invalid activate value \"\(value)\"; expected true or false\n")
            }
            do {
                try HeapProfiler.setActive(value == "true")
            } catch {
                return Response(status: 500, contentType: "text/plain", body: "\(error)\n")
            }
            log.info(value == "true" ? "heap profiling activated" : "heap profiling deactivated",
                     ["sample_interval_bytes": "\(HeapProfiler.defaultSampleInterval)"])
        }
        let status = HeapProfiler.status
        guard status.available else {
            return Response(status: 500, contentType: "text/plain", body: "\(HeapProfiler.ActivationError.unavailable)\n")
        }
        return Response(status: 200, contentType: "text/plain", body: "heap profiling active: \(status.active)\n")
    }

    /// A whole number in `range`, or `default` when absent; nil when present and not such a number.
    private static func parameter(_ text: String?, default value: Int, in range: ClosedRange<Int>) -> Int? {
        guard let text else { return value }
        guard let n = Int(text), range.contains(n) else { return nil }
        return n
    }
}
