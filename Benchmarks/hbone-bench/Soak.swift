import ArgumentParser
import Foundation
import HBONECore
import HBONEEventLoop
import CHBONEPosix

/// The load of scripts/soak.sh: holds `concurrency` tunnels open through a SOCKS5 proxy, replacing
/// `rate` of them per second, and serves the echo app behind the far proxy, all on one event loop
/// (a Python driver could not keep 10,000 tunnels churning at 1,000/s on two shared cores).
/// Each tunnel: SOCKS5 CONNECT, 64 random bytes echoed (its set-up time ends here), held open for
/// concurrency/rate seconds on average, a second echo, close. A share goes to `deniedPort`, which
/// the far side's policy denies: those must get SOCKS5 reply 0x02. Prints one JSON line.
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tunnels under churn for scripts/soak.sh (SOCKS5 client and echo app in one loop).")

    @Option(help: "SOCKS5 listener of the near proxy.") var socks: String
    @Option(help: "Source IP (a workload of the near proxy).") var source: String
    @Option(help: "Echo app address (a workload behind the far proxy); the driver listens there.") var dest: String
    @Option(help: "A port the far side's policy denies.") var deniedPort: UInt16
    @Option(help: "Share of tunnels sent to the denied port.") var deniedShare = 0.02
    @Option(help: "Tunnels held open.") var concurrency = 10_000
    @Option(help: "New tunnels per second once at full concurrency.") var rate = 1_000
    @Option(help: "How long to run.") var seconds = 600.0
    @Option(help: "client, echo (only the echo app, until killed) or both. Separate processes halve each one's fds.")
    var role = "both"

    func run() throws {
        guard let socksAddress = SocketAddress(socks), let sourceIP = IPAddress(source), let destination = SocketAddress(dest) else {
            throw ValidationError("--socks and --dest are ip:port, --source an IP")
        }
        _ = Socket.raiseFileLimit()
        Socket.ignoreSIGPIPE()
        guard ["client", "echo", "both"].contains(role) else { throw ValidationError("--role is client, echo or both") }
        let loop = try EventLoop()
        let driver = SoakDriver(loop: loop, socks: socksAddress, source: sourceIP, destination: destination, options: self)
        let echo = role == "client" ? nil : try TCPListener(loop: loop, address: destination, reusePort: false) { fd, _ in driver.acceptEcho(fd) }
        if role == "echo" {
            while true { loop.runOnce(timeoutMillis: 1000) }
        }
        driver.start()
        while !driver.done { loop.runOnce(timeoutMillis: 100) }
        echo?.close()
        print(driver.summary())
    }
}

final class SoakDriver {
    let loop: EventLoop
    let socks: SocketAddress
    let source: IPAddress
    let destination: SocketAddress
    let options: Soak
    var open = 0, peak = 0, ok = 0, failed = 0, denied = 0, deniedWrong = 0
    var errors: [String: Int] = [:]
    var setupNanos: [UInt64] = []
    var echoes: [ObjectIdentifier: EchoConnection] = [:]
    var tunnels: [ObjectIdentifier: SoakTunnel] = [:]
    var started: UInt64 = 0
    var nextReport: UInt64 = 0
    var spawning = true
    var done = false
    var rng = SystemRandomNumberGenerator()

    init(loop: EventLoop, socks: SocketAddress, source: IPAddress, destination: SocketAddress, options: Soak) {
        self.loop = loop
        self.socks = socks
        self.source = source
        self.destination = destination
        self.options = options
    }

    func start() {
        started = Socket.monotonicNanos()
        nextReport = started + 10_000_000_000
        tick()
    }

    /// Every 100 ms: ramp up towards the target, then replace `rate` per second.
    private func tick() {
        let now = Socket.monotonicNanos()
        if Double(now - started) / 1e9 >= options.seconds {
            spawning = false
            finishIfIdle()
            return
        }
        let perTick = Double(options.rate) / 10
        let want = open >= options.concurrency * 9 / 10 ? perTick : max(perTick, Double(options.concurrency - open) / 10)
        let meanHold = Double(options.concurrency) / Double(options.rate)
        for _ in 0..<Int(want) {
            let hold = Double.random(in: 0.5 * meanHold...1.5 * meanHold, using: &rng)
            let deny = Double.random(in: 0..<1, using: &rng) < options.deniedShare
            spawn(hold: hold, deny: deny)
        }
        if now >= nextReport {
            nextReport += 10_000_000_000
            FileHandle.standardError.write(Data((progress(now) + "\n").utf8))
        }
        _ = loop.schedule(after: 100_000_000) { [self] in tick() }
    }

    private func spawn(hold: Double, deny: Bool) {
        let target = SocketAddress(ip: destination.ip, port: deny ? options.deniedPort : destination.port)
        do {
            let fd = try Socket.connect(to: socks, from: SocketAddress(ip: source, port: 0))
            Socket.tune(fd, keepalive: nil)
            let t = try SoakTunnel(driver: self, fd: fd, target: target, hold: hold, deny: deny)
            tunnels[ObjectIdentifier(t)] = t
            open += 1
            peak = max(peak, open)
        } catch {
            fail("connect: \(error)")
        }
    }

    func fail(_ what: String) {
        failed += 1
        errors[what, default: 0] += 1
    }

    func finished(_ t: SoakTunnel) {
        guard tunnels.removeValue(forKey: ObjectIdentifier(t)) != nil else { return }
        open -= 1
        finishIfIdle()
    }

    private func finishIfIdle() {
        if !spawning && tunnels.isEmpty {
            // Let the echo side see the last FINs.
            _ = loop.schedule(after: 500_000_000) { [self] in done = true }
        }
    }

    func acceptEcho(_ fd: Int32) {
        guard let e = try? EchoConnection(driver: self, fd: fd) else { return }
        echoes[ObjectIdentifier(e)] = e
    }

    func echoClosed(_ e: EchoConnection) { echoes[ObjectIdentifier(e)] = nil }

    func progress(_ now: UInt64) -> String {
        "{\"t\": \(Int(Double(now - started) / 1e9)), \"open\": \(open), \"ok\": \(ok), \"failed\": \(failed), \"denied\": \(denied), \"errors\": \(json(errors))}"
    }

    func summary() -> String {
        let sorted = setupNanos.sorted()
        func p(_ q: Double) -> String {
            guard !sorted.isEmpty else { return "null" }
            return String(format: "%.2f", Double(sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]) / 1e6)
        }
        return "{\"ok\": \(ok), \"failed\": \(failed), \"denied\": \(denied), \"denied_but_not_refused\": \(deniedWrong), \"errors\": \(json(errors)), "
            + "\"peak_open\": \(peak), \"setup_ms_p50\": \(p(0.5)), \"setup_ms_p99\": \(p(0.99)), "
            + "\"seconds\": \(String(format: "%.1f", Double(Socket.monotonicNanos() - started) / 1e9))}"
    }

    private func json(_ d: [String: Int]) -> String {
        "{" + d.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
    }
}

/// One tunnel's client side: SOCKS5 exchange, echo, hold, echo, close.
final class SoakTunnel: TCPStreamDelegate {
    enum Phase { case connecting, socks, firstEcho, holding, secondEcho, done }
    unowned let driver: SoakDriver
    let tcp: TCPStream
    let target: SocketAddress
    let hold: Double
    let deny: Bool
    var phase = Phase.connecting
    var received: [UInt8] = []
    var expected: [UInt8] = []
    let began = Socket.monotonicNanos()
    var timer: EventLoop.TimerID?

    init(driver: SoakDriver, fd: Int32, target: SocketAddress, hold: Double, deny: Bool) throws {
        self.driver = driver
        self.target = target
        self.hold = hold
        self.deny = deny
        tcp = try TCPStream(loop: driver.loop, fd: fd, connecting: true, delegate: nil)
        tcp.delegate = self
        arm()
    }

    /// Each step must complete within 20 s.
    private func arm() {
        driver.loop.cancel(timer)
        timer = driver.loop.schedule(after: 20_000_000_000) { [unowned self] in
            timer = nil
            end("timeout in \(phase)")
        }
    }

    func tcpStreamConnected(_ stream: TCPStream) {
        phase = .socks
        guard let request = Socks5Request.connect(target) else { return end("IPv6 target") }
        tcp.write(Socks5Request.greeting + request)
    }

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        switch phase {
        case .socks:
            guard received.count >= 12 else { return }
            let code = received[3]
            received.removeFirst(12)
            if deny {
                if code == 2 { driver.denied += 1 } else { driver.deniedWrong += 1 }
                return end(nil)
            }
            guard code == 0 else { return end("socks reply \(code)") }
            phase = .firstEcho
            sendEcho()
        case .firstEcho, .secondEcho:
            guard received.count >= expected.count else { return }
            guard received == expected else { return end("corrupted echo") }
            received = []
            if phase == .firstEcho {
                driver.setupNanos.append(Socket.monotonicNanos() - began)
                phase = .holding
                driver.loop.cancel(timer)
                timer = driver.loop.schedule(after: UInt64(hold * 1e9)) { [unowned self] in
                    timer = nil
                    phase = .secondEcho
                    sendEcho()
                }
            } else {
                driver.ok += 1
                end(nil)
            }
        case .holding:
            end("unexpected bytes while holding")
        case .connecting, .done:
            break
        }
    }

    private func sendEcho() {
        expected = (0..<64).map { _ in UInt8.random(in: 0...255) }
        tcp.write(expected)
        arm()
    }

    func tcpStreamReadClosed(_ stream: TCPStream) { end(phase == .done ? nil : "EOF in \(phase)") }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { end("\(String(cString: strerror(errno))) in \(phase)") }

    private func end(_ error: String?) {
        guard phase != .done else { return }
        if let error { driver.fail(error) }
        phase = .done
        driver.loop.cancel(timer)
        timer = nil
        tcp.close()
        driver.finished(self)
    }
}

/// The echo app: writes back what it reads; closes after the peer's FIN.
final class EchoConnection: TCPStreamDelegate {
    unowned let driver: SoakDriver
    let tcp: TCPStream

    init(driver: SoakDriver, fd: Int32) throws {
        self.driver = driver
        tcp = try TCPStream(loop: driver.loop, fd: fd, connecting: false, delegate: nil)
        tcp.delegate = self
    }

    func tcpStreamConnected(_ stream: TCPStream) {}
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) { tcp.write(bytes) }
    func tcpStreamReadClosed(_ stream: TCPStream) {
        tcp.close()
        driver.echoClosed(self)
    }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { driver.echoClosed(self) }
}
