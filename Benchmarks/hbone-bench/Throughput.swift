import ArgumentParser
import Foundation
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// Bulk bytes app → east → west → app, upload and download, over 1 and N streams, beside direct
/// TCP in the same run. The far end is this process: it listens on `--dest` (a workload address of
/// the far proxy), so the baseline is not limited by a slow test server.
struct Throughput: ParsableCommand {
    enum Direction: String, ExpressibleByArgument, CaseIterable { case upload, download }

    @Option(help: "SOCKS5 HOST:PORT of the client-side proxy.") var socks: String
    @Option(help: "Source IP (a local workload of that proxy).") var source: String
    @Option(help: "IP:PORT this process listens on: a workload of the far proxy.") var dest: String
    @Option(help: "MiB per run, split over the streams.") var mib = 1024
    @Option(help: "Runs of each (the best is reported).") var runs = 3
    @Option(help: "Stream counts to measure.") var streams: [Int] = [1, 8]
    @Option(help: "Directions to measure.") var direction: [Direction] = Direction.allCases
    @Option(help: "Proxy PIDs, to report CPU seconds per GB.") var pids: [Int32] = []
    @Option(help: "Names of those proxies, in the same order.") var pidNames: [String] = []
    @OptionGroup var report: ReportOptions

    func run() throws {
        guard let socksAddress = SocketAddress(socks), let dst = SocketAddress(dest), let src = IPAddress(source) else {
            throw ValidationError("bad address")
        }
        let listener = try BlockingListener(dst)
        Thread { BulkServer.serve(listener) }.start()
        let names = pids.indices.map { $0 < pidNames.count ? pidNames[$0] : "pid \(pids[$0])" }
        var figures: [Figure] = []
        for dir in direction {
            for n in streams {
                let bytesPerStream = (mib << 20) / n
                var direct: [Double] = [], proxied: [(mbps: Double, cpu: [Double])] = []
                for _ in 0..<runs {
                    direct.append(try measure(dir, streams: n, bytesPerStream: bytesPerStream) {
                        try BlockingSocket.connect(dst, from: src)
                    }.mbps)
                    proxied.append(try measure(dir, streams: n, bytesPerStream: bytesPerStream) {
                        let s = try BlockingSocket.connect(socksAddress, from: src)
                        try s.socks5Connect(dst)
                        return s
                    })
                }
                let bestDirect = direct.max() ?? 0
                let best = proxied.max { $0.mbps < $1.mbps }!
                let title = "\(n) stream\(n == 1 ? "" : "s") \(dir.rawValue)"
                print(String(format: "%-18@ direct TCP %6.0f MB/s | through 2 proxies %6.0f MB/s (ratio %.2f)", title as NSString, bestDirect, best.mbps, best.mbps / bestDirect))
                let goal: (String, Bool)? = n == 1 ? ("≥ 400 MB/s", best.mbps >= 400) : nil
                figures.append(Figure("throughput", "\(title) through 2 proxies", value: best.mbps, unit: "MB/s",
                                      baseline: ("direct TCP", bestDirect), higherIsBetter: true, target: goal))
                if !pids.isEmpty {
                    print("    proxy CPU seconds per GB: " + zip(names, best.cpu).map { String(format: "%@ %.2f", $0 as NSString, $1) }.joined(separator: ", "))
                    for (name, cpu) in zip(names, best.cpu) {
                        // Issue 16: at most 1.2 s of CPU per GB in each proxy of the chain.
                        figures.append(Figure("throughput", "\(title): \(name) CPU per GB", value: cpu, unit: "s/GB", higherIsBetter: false,
                                              target: ("≤ 1.2 s/GB", cpu <= 1.2)))
                    }
                }
            }
        }
        try report.emit(figures)
        printCommand()
    }

    /// One run: `streams` connections in parallel, each moving `bytesPerStream`.
    func measure(_ dir: Direction, streams: Int, bytesPerStream: Int, open: @escaping @Sendable () throws -> BlockingSocket) throws -> (mbps: Double, cpu: [Double]) {
        let cpu0 = pids.map { processCPUMillis($0) ?? 0 }
        let t0 = Date()
        let group = DispatchGroup()
        let failure = FirstFailure()
        for _ in 0..<streams {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let s = try open()
                    defer { s.close() }
                    try BulkServer.client(s, dir, bytes: bytesPerStream)
                } catch {
                    failure.record(error)
                }
            }.start()
        }
        group.wait()
        if let error = failure.error { throw error }
        let seconds = Date().timeIntervalSince(t0)
        let cpu1 = pids.map { processCPUMillis($0) ?? 0 }
        let total = Double(bytesPerStream * streams)
        let gb = total / 1e9
        return (total / 1e6 / seconds, zip(cpu0, cpu1).map { ($1 - $0) / 1000 / gb })
    }
}

/// The far end of a bulk transfer. The client's first 9 bytes say what to do: `U` + count (the
/// server reads count bytes, then answers one byte) or `D` + count (it sends count bytes, then FIN).
enum BulkServer {
    static func serve(_ listener: BlockingListener) {
        while let conn = listener.accept() {
            Thread {
                defer { conn.close() }
                var header = [UInt8](repeating: 0, count: 9)
                guard header.withUnsafeMutableBytes({ conn.receiveExactly($0) }) else { return }
                let count = header[1...].reduce(0) { $0 << 8 | Int($1) }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
                defer { buffer.deallocate() }
                if header[0] == UInt8(ascii: "U") {
                    var got = 0
                    while got < count {
                        let n = conn.receive(into: buffer)
                        if n <= 0 { return }
                        got += n
                    }
                    try? [UInt8(ascii: "k")].withUnsafeBytes { try conn.sendAll($0) }
                } else {
                    var sent = 0
                    while sent < count {
                        let n = min(buffer.count, count - sent)
                        guard (try? conn.sendAll(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))) != nil else { return }
                        sent += n
                    }
                    conn.shutdownWrite()
                }
            }.start()
        }
    }

    static func client(_ s: BlockingSocket, _ dir: Throughput.Direction, bytes: Int) throws {
        let op = UInt8(ascii: dir == .upload ? "U" : "D")
        let header = [op] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: bytes >> ($0 * 8)) }
        try header.withUnsafeBytes { try s.sendAll($0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        switch dir {
        case .upload:
            buffer.initializeMemory(as: UInt8.self, repeating: 0x5a)
            var sent = 0
            while sent < bytes {
                let n = min(buffer.count, bytes - sent)
                try s.sendAll(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                sent += n
            }
            var ack = [UInt8](repeating: 0, count: 1)
            guard ack.withUnsafeMutableBytes({ s.receiveExactly($0) }) else { throw BenchError("upload: no acknowledgement") }
        case .download:
            var got = 0
            while got < bytes {
                let n = s.receive(into: buffer)
                if n <= 0 { throw BenchError("download: closed after \(got) of \(bytes) bytes") }
                got += n
            }
        }
    }
}

/// The first error of several threads.
final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Error?
    func record(_ e: Error) { lock.withLock { if first == nil { first = e } } }
    var error: Error? { lock.withLock { first } }
}
