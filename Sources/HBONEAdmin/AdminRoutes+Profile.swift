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

    /// A whole number in `range`, or `default` when absent; nil when present and not such a number.
    private static func parameter(_ text: String?, default value: Int, in range: ClosedRange<Int>) -> Int? {
        guard let text else { return value }
        guard let n = Int(text), range.contains(n) else { return nil }
        return n
    }
}
