import ArgumentParser
import Foundation
import Synchronization
import HBONECore
import HBONEIdentity
import HBONETLS
#if canImport(Glibc)
import Glibc
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hbone-bench",
        abstract: "Benchmarks for hbone; every figure is printed with the command that reproduces it.",
        subcommands: [Handshake.self, Throughput.self, Authz.self, Latency.self, Connections.self, Idle.self])
}

/// Full TLS 1.3 mTLS handshakes, a fresh TCP connection each, no resumption.
struct Handshake: ParsableCommand {
    @Option(help: "HOST:PORT of an HBONE server (ours, or any mTLS server).") var target: String
    @Option(help: "Directory with cert-chain.pem and key.pem of the client SVID.") var certDir: String
    @Option(help: "PEM roots the server must chain to.") var ca: String
    @Option(help: "The SPIFFE ID the server must present.") var expectId: String
    @Option(help: "Client threads.") var concurrency = 2
    @Option(help: "Seconds to measure.") var duration = 5.0
    @Option(help: "Seconds of warm-up, not counted.") var warmup = 1.0
    @Option(help: "Server PID, to report its CPU milliseconds per handshake.") var serverPid: Int32?
    @Option(help: "Source IP to connect from.") var source: String?
    @Flag(help: "Wait for the server's first application bytes (HTTP/2 SETTINGS): the server finished verifying us.") var waitForServer = false
    @Flag(help: "Count a handshake without ALPN h2 as done (for baselines such as openssl s_server); chain and identity are still checked.") var allowNoAlpn = false

    func run() throws {
        guard let address = SocketAddress(target) else { throw ValidationError("--target must be ip:port") }
        let id = try SPIFFEID(parsing: expectId)
        let context = try TLSContext(role: .client, certifiedKey: CertifiedKey(directory: certDir), trust: TrustBundle(file: ca))
        let src = source.flatMap { IPAddress($0) }
        let counting = Atomic<Bool>(false)
        let stop = Atomic<Bool>(false)
        let latencies = Mutex<[Double]>([])
        let failures = Atomic<Int>(0)
        let firstError = Mutex<String?>(nil)
        var threads: [Thread] = []
        let group = DispatchGroup()
        for _ in 0..<concurrency {
            group.enter()
            let wait = waitForServer
            let noALPN = allowNoAlpn
            let t = Thread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
                defer { buffer.deallocate(); group.leave() }
                var local: [Double] = []
                while !stop.load(ordering: .relaxed) {
                    let start = DispatchTime.now().uptimeNanoseconds
                    var ok = false
                    do {
                        ok = try Handshake.once(context: context, address: address, expected: id, source: src, buffer: buffer, waitForServer: wait, allowNoALPN: noALPN)
                    } catch {
                        firstError.withLock { if $0 == nil { $0 = "\(error)" } }
                    }
                    if ok {
                        if counting.load(ordering: .relaxed) { local.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
                    } else if counting.load(ordering: .relaxed) {
                        failures.add(1, ordering: .relaxed)
                    }
                }
                latencies.withLock { $0 += local }
            }
            threads.append(t)
            t.start()
        }
        Thread.sleep(forTimeInterval: warmup)
        let cpu0 = serverPid.flatMap(processCPUMillis)
        counting.store(true, ordering: .relaxed)
        let t0 = Date()
        Thread.sleep(forTimeInterval: duration)
        counting.store(false, ordering: .relaxed)
        let elapsed = Date().timeIntervalSince(t0)
        let cpu1 = serverPid.flatMap(processCPUMillis)
        stop.store(true, ordering: .relaxed)
        group.wait()
        let sorted = latencies.withLock { $0 }.sorted()
        let rate = Double(sorted.count) / elapsed
        print(String(format: "handshakes/s: %.0f  (n=%d, failures=%d, concurrency=%d)", rate, sorted.count, failures.load(ordering: .relaxed), concurrency))
        if let e = firstError.withLock({ $0 }) { print("first failure: \(e)") }
        print(String(format: "latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f", percentile(sorted, 0.5), percentile(sorted, 0.99), percentile(sorted, 0.999)))
        if let cpu0, let cpu1, !sorted.isEmpty {
            print(String(format: "server CPU per handshake: %.3f ms  (%.0f handshakes per server-core-second)", (cpu1 - cpu0) / Double(sorted.count), Double(sorted.count) / ((cpu1 - cpu0) / 1000)))
        }
        print("command: \(CommandLine.arguments.joined(separator: " "))")
    }

    static func once(context: TLSContext, address: SocketAddress, expected: SPIFFEID, source: IPAddress?, buffer: UnsafeMutableRawBufferPointer, waitForServer: Bool, allowNoALPN: Bool) throws -> Bool {
        let socket = try BlockingSocket.connect(address, from: source)
        defer { socket.close() }
        let engine = try TLSEngine(context: context, verification: .outbound(expected: [expected]))
        var done = false
        while true {
            let status = engine.handshake()
            var err: Error?
            engine.takeCiphertext { bytes in do { try socket.sendAll(bytes) } catch { err = error } }
            if let err { throw err }
            switch status {
            case .complete: done = true
            case let .failed(error):
                // The baseline server may not speak ALPN: the handshake itself still completed and verified.
                if allowNoALPN, engine.rejection == .noALPN, engine.peerIdentity != nil { return true }
                throw BenchError("handshake failed: \(error)")
            case .inProgress: break
            }
            if done && !waitForServer { return true }
            if done {
                // Application bytes (SETTINGS) prove the server accepted our certificate.
                let n = socket.receive(into: buffer)
                if n <= 0 { return false }
                engine.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                if case .bytes = engine.read(into: buffer) { return true }
                continue
            }
            let n = socket.receive(into: buffer)
            if n <= 0 { return false }
            engine.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }
}

/// One-stream bulk upload through SOCKS5 (the proxy chain) and directly, in the same run.
struct Throughput: ParsableCommand {
    @Option(help: "SOCKS5 HOST:PORT of the client-side proxy.") var socks: String
    @Option(help: "Source IP (a local workload of that proxy).") var source: String
    @Option(help: "Destination IP:PORT of a sink (discard) server behind the far proxy.") var dest: String
    @Option(help: "MiB per run.") var mib = 1024
    @Option(help: "Runs of each (best is reported).") var runs = 3
    @Option(help: "Proxy PIDs, to report CPU seconds per GB.") var pids: [Int32] = []

    func run() throws {
        guard let socksAddress = SocketAddress(socks), let dst = SocketAddress(dest), let src = IPAddress(source) else {
            throw ValidationError("bad address")
        }
        let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
        func once(proxied: Bool) throws -> (mbps: Double, cpu: [Double]) {
            let cpu0 = pids.map { processCPUMillis($0) ?? 0 }
            let t0 = Date()
            let s: BlockingSocket
            if proxied {
                s = try BlockingSocket.connect(socksAddress, from: src)
                try s.socks5Connect(dst)
            } else {
                s = try BlockingSocket.connect(dst, from: src)
            }
            defer { s.close() }
            try chunk.withUnsafeBytes { bytes in for _ in 0..<mib { try s.sendAll(bytes) } }
            s.shutdownWrite()
            // The sink answers with one byte once it has read everything.
            var one = [UInt8](repeating: 0, count: 1)
            _ = one.withUnsafeMutableBytes { s.receiveExactly($0) }
            let seconds = Date().timeIntervalSince(t0)
            let cpu1 = pids.map { processCPUMillis($0) ?? 0 }
            return (Double(mib) * 1.048576 / seconds, zip(cpu0, cpu1).map { ($1 - $0) / 1000 / (Double(mib) / 1024 * 1.073741824) })
        }
        var direct: [Double] = [], proxied: [(Double, [Double])] = []
        for _ in 0..<runs {
            direct.append(try once(proxied: false).mbps)
            proxied.append(try once(proxied: true))
        }
        let bestDirect = direct.max() ?? 0
        let best = proxied.max { $0.0 < $1.0 }!
        print(String(format: "direct TCP:        %.0f MB/s", bestDirect))
        print(String(format: "through 2 proxies: %.0f MB/s  (ratio %.2f of direct)", best.0, best.0 / bestDirect))
        if !pids.isEmpty {
            print("proxy CPU seconds per GB: " + best.1.map { String(format: "%.2f", $0) }.joined(separator: ", "))
        }
        print("command: \(CommandLine.arguments.joined(separator: " "))")
    }
}

Bench.main()
