import ArgumentParser
import Foundation
import HBONECore
import HBONEIdentity
import HBONETLS
#if canImport(Glibc)
import Glibc
#endif

/// Where the app side connects: through the proxy chain (SOCKS5, or captured: see `--captured`),
/// straight to the echo server, or into another chain to the same echo server (`--peer`, a plain TCP
/// entry such as the Go baseline's `hboneclient -mode listen`), so both chains are measured in the
/// same run.
struct ChainOptions: ParsableArguments {
    @Option(help: "SOCKS5 HOST:PORT of the client-side proxy.") var socks: String
    @Option(help: ArgumentHelp("Enter our chain by connecting from this source IP (a local workload of the client-side proxy) straight to --dest: the network namespace's REDIRECT rule for that source hands it to the proxy's outbound capture, as istio-cni's rules do, instead of SOCKS5.", valueName: "ip"))
    var capturedFrom: String?
    @Option(help: "Source IP (a local workload of that proxy).") var source: String
    @Option(help: "Destination IP:PORT of an echo server behind the far proxy.") var dest: String
    @Option(help: "HOST:PORT of another two-proxy chain's plain TCP entry that leads to the same --dest.") var peer: String?
    @Option(help: "Name of the --peer chain in the figures.") var peerName = "Go chain"
    @Option(help: "HOST:PORT of a reference chain's plain TCP entry to the same --dest, measured beside the others with no goal: a zero-work relay chain (`hbone-bench relay`), the floor under any chain of epoll proxies.")
    var reference: String?
    @Option(help: "Name of the --reference chain in the figures.") var referenceName = "zero-work relay chain"

    enum Path { case direct, chain, peer, reference }

    /// How our chain is entered, for the figures' names.
    var entry: String { capturedFrom == nil ? "SOCKS5 entry" : "outbound-capture entry" }

    var paths: [Path] { [.direct, .chain] + (peer == nil ? [] : [.peer]) + (reference == nil ? [] : [.reference]) }

    /// Where a path's connections go: the address to connect to, the source to bind, and the
    /// destination to ask for through SOCKS5 first (nil: the connection is already headed there).
    func route(_ path: Path) throws -> (to: SocketAddress, from: IPAddress?, socksDestination: SocketAddress?) {
        guard let s = SocketAddress(socks), let d = SocketAddress(dest), let src = IPAddress(source) else { throw ValidationError("bad address") }
        switch path {
        case .direct:
            return (d, src, nil)
        case .chain:
            guard let capturedFrom else { return (s, src, d) }
            guard let from = IPAddress(capturedFrom) else { throw ValidationError("--captured-from must be an IP address") }
            return (d, from, nil)
        case .peer, .reference:
            let (text, option) = path == .peer ? (peer, "--peer") : (reference, "--reference")
            guard let address = text.flatMap(SocketAddress.init) else { throw ValidationError("\(option) must be ip:port") }
            return (address, nil, nil)
        }
    }

    func name(_ path: Path) -> String {
        switch path {
        case .direct: return "direct TCP"
        case .chain: return "hbone chain"
        case .peer: return peerName
        case .reference: return referenceName
        }
    }

    func open(_ path: Path) throws -> BlockingSocket {
        let route = try route(path)
        let sock = try BlockingSocket.connect(route.to, from: route.from)
        if let d = route.socksDestination { try sock.socks5Connect(d) }
        return sock
    }

    func open(proxied: Bool) throws -> BlockingSocket { try open(proxied ? .chain : .direct) }
}

/// Request/response round trips on one connection, through the chain and direct. The two are
/// measured in alternating blocks, so a change in the machine's load hits both alike; with
/// `--serve` this process is the echo server (listening on `--dest`), so the baseline is not a
/// slow test server.
struct Latency: ParsableCommand {
    @OptionGroup var chain: ChainOptions
    @Option(help: "Round trips per size and path.") var count = 5000
    @Option(help: "Alternating blocks the round trips are split into.") var blocks = 10
    @Flag(help: "Listen on --dest and echo (instead of an echo server already there).") var serve = false
    @OptionGroup var report: ReportOptions

    func run() throws {
        if serve {
            guard let address = SocketAddress(chain.dest) else { throw ValidationError("--dest must be ip:port") }
            let listener = try BlockingListener(address)
            Thread { EchoServer.serve(listener) }.start()
        }
        var figures: [Figure] = []
        let paths = chain.paths
        for size in [1, 1024] {
            let sockets = try paths.map { try chain.open($0) }
            defer { sockets.forEach { $0.close() } }
            var results = paths.map { _ in LatencyRecorder() }
            let out = [UInt8](repeating: 0x61, count: size)
            var back = [UInt8](repeating: 0, count: size)
            for block in 0..<(blocks * paths.count) {
                let k = block % paths.count
                let s = sockets[k]
                let n = count / blocks
                for i in 0..<(n + 50) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try out.withUnsafeBytes { try s.sendAll($0) }
                    guard back.withUnsafeMutableBytes({ s.receiveExactly($0) }) else { throw BenchError("echo closed") }
                    if i >= 50 { results[k].record(nanoseconds: DispatchTime.now().uptimeNanoseconds - t0) }
                }
            }
            let d = results[0], c = results[1]
            print(String(format: "%5d B  direct p50 %6.1f µs p99 %6.1f µs | chain p50 %6.1f µs p99 %6.1f µs | ratio p50 %.2f p99 %.2f", size,
                         d.micros(50), d.micros(99), c.micros(50), c.micros(99), c.micros(50) / d.micros(50), c.micros(99) / d.micros(99)))
            let label = size == 1 ? "1 B" : "1 KiB"
            for p in [50.0, 99.0] {
                figures.append(Figure("latency", "\(label) request/response RTT p\(Int(p)) through 2 proxies", value: c.micros(p), unit: "µs",
                                      baseline: ("direct TCP", d.micros(p)), higherIsBetter: false))
            }
            // Issue 16: p99 within 3× the chain's own p50.
            figures.append(Figure("latency", "\(label) RTT p99 through 2 proxies vs their own p50", value: c.micros(99), unit: "µs",
                                  baseline: ("hbone chain p50", c.micros(50)), higherIsBetter: false,
                                  target: ("≤ 3× own p50", c.micros(99) <= 3 * c.micros(50))))
            for (k, path) in paths.enumerated() where path == .peer || path == .reference {
                let g = results[k], other = chain.name(path)
                print(String(format: "%5d B  %@ p50 %6.1f µs p99 %6.1f µs | hbone/%@ p50 %.2f p99 %.2f", size, other,
                             g.micros(50), g.micros(99), other, c.micros(50) / g.micros(50), c.micros(99) / g.micros(99)))
                for p in [50.0, 99.0] {
                    let goal = p == 50 && size == 1 && path == .peer
                    figures.append(Figure("latency", "\(label) RTT p\(Int(p)) through 2 proxies vs the \(other)", value: c.micros(p), unit: "µs",
                                          baseline: (other, g.micros(p)), higherIsBetter: false,
                                          target: goal ? ("≤ 0.5× \(other)", c.micros(p) <= 0.5 * g.micros(p)) : nil))
                }
            }
            // What each chain adds to the round trip above the zero-work chain: the part the
            // proxies' own work decides (wake-ups and loopback TCP are in the floor).
            if let r = paths.firstIndex(of: .reference), let k = paths.firstIndex(of: .peer) {
                let floor = results[r].micros(50), ours = c.micros(50) - floor, theirs = results[k].micros(50) - floor
                print(String(format: "%5d B  p50 above the %@: hbone %+.1f µs, %@ %+.1f µs", size, chain.referenceName, ours, chain.peerName, theirs))
                figures.append(Figure("latency", "\(label) RTT p50 added above the \(chain.referenceName)", value: ours, unit: "µs",
                                      baseline: (chain.peerName, theirs), higherIsBetter: false))
            }
        }
        try report.emit(figures)
        printCommand()
    }
}

/// Echoes every byte back, one thread per connection.
enum EchoServer {
    static func serve(_ listener: BlockingListener) {
        while let conn = listener.accept() {
            Thread {
                defer { conn.close() }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
                defer { buffer.deallocate() }
                while true {
                    let n = conn.receive(into: buffer)
                    if n <= 0 { return }
                    guard (try? conn.sendAll(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))) != nil else { return }
                }
            }.start()
        }
    }
}

/// New application connections per second (connect, 1-byte echo, close, `--concurrency` at a
/// time) over a warm pool: direct, through our chain and, with `--peer` and `--reference`, through
/// other chains. The load is event-driven (`ConnectionLoad`), so the client costs the cores little.
struct Connections: ParsableCommand {
    @OptionGroup var chain: ChainOptions
    @Option(help: "Seconds each path is measured for, in all.") var duration = 3.0
    @Option(help: "Blocks the paths take turns in (the host's load drifts: one long block each would give one path a busy spell).")
    var rounds = 3
    @Option(help: "Connections in flight at once.") var concurrency = 16
    @Flag(help: "Listen on --dest and echo (instead of an echo server already there).") var serve = false
    @Option(help: "PIDs of our chain's proxies, to report their CPU per connection.") var pids: [Int32] = []
    @Option(help: "PIDs of the --peer chain's processes, likewise.") var peerPids: [Int32] = []
    @Option(help: "PIDs of the --reference chain's processes, likewise.") var referencePids: [Int32] = []
    @OptionGroup var report: ReportOptions

    func run() throws {
        if serve {
            guard let address = SocketAddress(chain.dest) else { throw ValidationError("--dest must be ip:port") }
            let listener = try BlockingListener(address)
            try EventEchoServer.start(listener)
        }
        guard rounds > 0 else { throw ValidationError("--rounds must be at least 1") }
        let paths = chain.paths
        func watched(_ path: ChainOptions.Path) -> [Int32] {
            switch path {
            case .chain: pids
            case .peer: peerPids
            case .reference: referencePids
            case .direct: []
            }
        }
        // Per path, over all rounds: connections done, seconds, this process's and the watched processes' CPU.
        var done = [Int](repeating: 0, count: paths.count)
        var seconds = [Double](repeating: 0, count: paths.count)
        var ownCPU = [Double](repeating: 0, count: paths.count)
        var chainCPU = paths.map { [Double](repeating: 0, count: watched($0).count) }
        for path in paths { _ = try? once(path) }     // warm the pools
        for _ in 0..<rounds {
            for (k, path) in paths.enumerated() {
                let cpu0 = watched(path).map { processCPUMillis($0) ?? 0 }
                let own0 = processCPUMillis(getpid()) ?? 0
                let (n, s) = try load(path).run(duration: duration / Double(rounds))
                ownCPU[k] += (processCPUMillis(getpid()) ?? 0) - own0
                for (i, pid) in watched(path).enumerated() { chainCPU[k][i] += (processCPUMillis(pid) ?? 0) - cpu0[i] }
                done[k] += n
                seconds[k] += s
            }
        }
        var rates: [Double] = []
        var figures: [Figure] = []
        for (k, path) in paths.enumerated() {
            rates.append(seconds[k] > 0 ? Double(done[k]) / seconds[k] : 0)
            guard done[k] > 0 else { continue }
            // The client and echo server (this process) share the cores with what is measured.
            let own = ownCPU[k] * 1000 / Double(done[k])
            print(String(format: "%@: client and echo server CPU per new connection %.0f µs", chain.name(path), own))
            figures.append(Figure("connections", "\(chain.name(path)): client and echo server CPU per new connection", value: own,
                                  unit: "µs", higherIsBetter: false))
            if !chainCPU[k].isEmpty {
                // CPU of the chain's own processes per new connection: what the proxies cost,
                // apart from the client and the echo server both chains share.
                let micros = chainCPU[k].map { $0 * 1000 / Double(done[k]) }
                let who = path == .chain ? "\(chain.name(path)) (\(chain.entry))" : chain.name(path)
                print(String(format: "%@: proxy CPU per new connection %.0f µs (%@)", who, micros.reduce(0, +),
                             micros.map { String(format: "%.0f", $0) }.joined(separator: " + ")))
                figures.append(Figure("connections", "\(who): proxy CPU per new connection", value: micros.reduce(0, +),
                                      unit: "µs", higherIsBetter: false))
            }
        }
        let direct = rates[0], ours = rates[1]
        print(String(format: "new connections/s (%d at a time, %@): direct %.0f, through 2 proxies %.0f (ratio %.2f)", concurrency, chain.entry,
                     direct, ours, ours / direct))
        figures.append(Figure("connections", "new app connections/s (\(concurrency) at a time) through 2 proxies, \(chain.entry)", value: ours,
                              unit: "1/s", baseline: ("direct TCP", direct), higherIsBetter: true))
        for (k, path) in chain.paths.enumerated() where path == .peer || path == .reference {
            let other = chain.name(path)
            print(String(format: "new connections/s through the %@: %.0f (hbone %.2f×)", other, rates[k], ours / rates[k]))
            figures.append(Figure("connections", "new app connections/s (\(concurrency) at a time) through 2 proxies, \(chain.entry), vs the \(other)",
                                  value: ours, unit: "1/s", baseline: (other, rates[k]), higherIsBetter: true,
                                  target: path == .peer ? ("≥ 2× \(other)", ours >= 2 * rates[k]) : nil))
        }
        try report.emit(figures)
        printCommand()
    }

    /// Each of the `concurrency` slots completes one connection.
    func once(_ path: ChainOptions.Path) throws { _ = try load(path).run(duration: 0) }

    func load(_ path: ChainOptions.Path) throws -> ConnectionLoad {
        let route = try chain.route(path)
        var steps: [ConnectionLoad.Step] = [.send([0x78]), .expect(1, check: { $0 == [0x78] }, what: "echo")]
        if let d = route.socksDestination {
            // SOCKS5 as a client does it: greeting, method reply, CONNECT, reply, then the echo.
            guard let request = Socks5Request.connect(d) else { throw BenchError("IPv4 only") }
            steps = [.send(Socks5Request.greeting), .expect(2, check: { $0 == [5, 0] }, what: "SOCKS5 greeting"),
                     .send(request), .expect(10, check: { $0[1] == 0 }, what: "SOCKS5 CONNECT")] + steps
        }
        return ConnectionLoad(target: route.to, source: route.from, steps: steps, concurrency: concurrency)
    }
}

/// Memory per idle tunnel and per idle HBONE connection: RSS of the proxies before and after
/// holding N of them open.
struct Idle: ParsableCommand {
    @OptionGroup var chain: ChainOptions
    @Option(help: "Idle tunnels to hold.") var tunnels = 1000
    @Option(help: "Idle HBONE connections to hold against --hbone-target.") var connections = 200
    @Option(help: "HBONE HOST:PORT for the connection measurement (the far proxy's :15008).") var hboneTarget: String
    @Option(help: "Client SVID directory for the HBONE connections.") var certDir: String
    @Option(help: "Trust bundle.") var ca: String
    @Option(help: "Identity the HBONE server must present.") var expectId: String
    @Option(help: "Client-side proxy PID.") var clientPid: Int32
    @Option(help: "Server-side proxy PID.") var serverPid: Int32
    @Option(help: "Server-side proxy metrics HOST:PORT (for hbone_heap_in_use_bytes).") var serverMetrics: String?
    @Option(help: "Client-side proxy metrics HOST:PORT.") var clientMetrics: String?
    @OptionGroup var report: ReportOptions

    /// hbone_heap_in_use_bytes from a proxy's metrics (bytes really held, without malloc's retained free memory).
    func heap(_ metrics: String?) -> Int? {
        guard let metrics, let address = SocketAddress(metrics), let s = try? BlockingSocket.connect(address) else { return nil }
        defer { s.close() }
        guard (try? Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8).withUnsafeBytes({ try s.sendAll($0) })) != nil else { return nil }
        var text = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { s.receive(into: $0) }
            if n <= 0 { break }
            text += buffer[0..<n]
        }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("hbone_heap_in_use_bytes ") {
            return Int(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    func rss(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 0
    }

    func run() throws {
        // Tunnels: each one echoed once (so both proxies hold the full tunnel state), then left idle.
        let c0 = rss(clientPid), s0 = rss(serverPid)
        let ch0 = heap(clientMetrics), sh0 = heap(serverMetrics)
        var held: [BlockingSocket] = []
        for _ in 0..<tunnels {
            let s = try chain.open(proxied: true)
            try [UInt8](arrayLiteral: 1).withUnsafeBytes { try s.sendAll($0) }
            var b = [UInt8](repeating: 0, count: 1)
            _ = b.withUnsafeMutableBytes { s.receiveExactly($0) }
            held.append(s)
        }
        Thread.sleep(forTimeInterval: 1)
        let c1 = rss(clientPid), s1 = rss(serverPid)
        print(String(format: "idle tunnel (RSS): client proxy %.1f KiB, server proxy %.1f KiB each (%d tunnels; RSS %d→%d and %d→%d KiB)",
                     Double(c1 - c0) / 1024 / Double(tunnels), Double(s1 - s0) / 1024 / Double(tunnels), tunnels, c0 / 1024, c1 / 1024, s0 / 1024, s1 / 1024))
        var figures: [Figure] = []
        func memory(_ name: String, _ kib: Double, goal: Double) {
            figures.append(Figure("idle", name, value: kib, unit: "KiB", higherIsBetter: false, target: ("≤ \(Int(goal)) KiB", kib <= goal)))
        }
        memory("idle tunnel, client proxy (RSS)", Double(c1 - c0) / 1024 / Double(tunnels), goal: 8)
        memory("idle tunnel, server proxy (RSS)", Double(s1 - s0) / 1024 / Double(tunnels), goal: 8)
        if let ch0, let sh0, let ch1 = heap(clientMetrics), let sh1 = heap(serverMetrics) {
            print(String(format: "idle tunnel (heap in use): client proxy %.1f KiB, server proxy %.1f KiB each",
                         Double(ch1 - ch0) / 1024 / Double(tunnels), Double(sh1 - sh0) / 1024 / Double(tunnels)))
            memory("idle tunnel, client proxy (heap in use)", Double(ch1 - ch0) / 1024 / Double(tunnels), goal: 8)
            memory("idle tunnel, server proxy (heap in use)", Double(sh1 - sh0) / 1024 / Double(tunnels), goal: 8)
        }
        held.forEach { $0.close() }
        // Idle means idle: the proxy's 1 s sweep gives an idle loop's allocation cache and idle
        // connections' frame buffers back within two sweeps, so both readings wait for that.
        Thread.sleep(forTimeInterval: 3)

        // HBONE connections: full mTLS handshake + HTTP/2 preface and SETTINGS, then idle.
        guard let target = SocketAddress(hboneTarget) else { throw ValidationError("--hbone-target must be ip:port") }
        let context = try TLSContext(role: .client, certifiedKey: CertifiedKey(directory: certDir), trust: TrustBundle(file: ca))
        let id = try SPIFFEID(parsing: expectId)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        let before = rss(serverPid)
        let heapBefore = heap(serverMetrics)
        var engines: [(BlockingSocket, TLSEngine)] = []
        for _ in 0..<connections {
            let s = try BlockingSocket.connect(target, from: IPAddress(chain.source))
            let e = try TLSEngine(context: context, verification: .outbound(expected: [id]))
            while true {
                let status = e.handshake()
                var failure: Error?
                e.takeCiphertext { bytes in do { try s.sendAll(bytes) } catch { failure = error } }
                if let failure { throw failure }
                if status == .complete { break }
                if case .failed = status { throw BenchError("handshake failed") }
                let n = s.receive(into: buffer)
                if n <= 0 { throw BenchError("closed") }
                e.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            // Client preface + empty SETTINGS, as an HBONE client opens every connection.
            let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
            _ = preface.withUnsafeBytes { e.write($0) }
            e.takeCiphertext { bytes in try? s.sendAll(bytes) }
            engines.append((s, e))
        }
        Thread.sleep(forTimeInterval: 3)
        let after = rss(serverPid)
        print(String(format: "idle HBONE connection (RSS): server proxy %.1f KiB each (%d connections; RSS %d→%d KiB)",
                     Double(after - before) / 1024 / Double(connections), connections, before / 1024, after / 1024))
        memory("idle HBONE connection, server proxy (RSS)", Double(after - before) / 1024 / Double(connections), goal: 40)
        if let heapBefore, let heapAfter = heap(serverMetrics) {
            print(String(format: "idle HBONE connection (heap in use): server proxy %.1f KiB each", Double(heapAfter - heapBefore) / 1024 / Double(connections)))
            memory("idle HBONE connection, server proxy (heap in use)", Double(heapAfter - heapBefore) / 1024 / Double(connections), goal: 40)
        }
        engines.forEach { $0.0.close() }
        try report.emit(figures)
        printCommand()
    }
}
