import Foundation
import HBONECore
import HBONEEventLoop
import HBONEProxy

/// The admin, metrics and readiness listeners on their own thread and event loop, so a slow scrape
/// or a large config_dump never stalls a data-plane loop. One request per connection.
public final class AdminServer: Sendable {
    private let routes: AdminRoutes
    private let loopBox = LoopBox()

    public init(routes: AdminRoutes) {
        self.routes = routes
    }

    /// Binds the given addresses and starts serving; throws if a bind fails.
    public func start(_ listeners: [(AdminRoutes.Port, SocketAddress)]) throws {
        let ready = DispatchSemaphore(value: 0)
        let failure = LoopBox.ErrorBox()
        let routes = self.routes
        let box = loopBox
        let thread = Thread {
            Socket.setThreadName("hbone-admin")
            do {
                let loop = try EventLoop(index: -1)
                var bound: [TCPListener] = []
                for (port, address) in listeners {
                    bound.append(try TCPListener(loop: loop, address: address, reusePort: false) { fd, _ in
                        AdminConnection.start(fd: fd, loop: loop, port: port, routes: routes)
                    })
                }
                box.set(loop)
                ready.signal()
                loop.run()
                withExtendedLifetime(bound) {}
            } catch {
                failure.set("\(error)")
                ready.signal()
            }
        }
        thread.start()
        ready.wait()
        if let error = failure.get() { throw ProxyStartError(description: "admin listeners: \(error)") }
    }

    public func stop() { loopBox.get()?.stop() }
}

public struct ProxyStartError: Error, CustomStringConvertible { public let description: String }

/// Cross-thread holders for the admin loop and a start error.
final class LoopBox: @unchecked Sendable {
    private let lock = NSLock()
    private var loop: EventLoop?
    func set(_ l: EventLoop) { lock.withLock { loop = l } }
    func get() -> EventLoop? { lock.withLock { loop } }

    final class ErrorBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: String?
        func set(_ v: String) { lock.withLock { value = v } }
        func get() -> String? { lock.withLock { value } }
    }
}

/// One admin HTTP exchange: read the request head, answer, close.
final class AdminConnection: TCPStreamDelegate {
    private var parser = HTTPRequestParser()
    private let port: AdminRoutes.Port
    private let routes: AdminRoutes
    private var stream: TCPStream?
    private var answered = false
    private var timer: EventLoop.TimerID?
    /// An answer being prepared (a CPU profile): the request timeout no longer applies.
    private var pending: AdminRoutes.Deferred?
    /// Live connections (the loop holds them until they close). Admin-loop state only.
    nonisolated(unsafe) private static var live: [ObjectIdentifier: AdminConnection] = [:]
    nonisolated(unsafe) private static var livePerPort: [AdminRoutes.Port: Int] = [:]
    /// Connections closed at once because their port had `maxLivePerPort` open.
    nonisolated(unsafe) private(set) static var refused: UInt64 = 0
    nonisolated(unsafe) private static var refusalLog = LogThrottle()

    /// Metrics and readiness listen on every interface: without a bound, anyone who can reach them
    /// could hold descriptors (10 s each) until the data plane's accepts fail. Each port has its own
    /// budget, so a flood of one cannot lock the local admin port (drain, config_dump) out.
    static let maxLivePerPort = 256

    static func start(fd: Int32, loop: EventLoop, port: AdminRoutes.Port, routes: AdminRoutes) {
        guard livePerPort[port, default: 0] < maxLivePerPort else {
            Socket.abort(fd)
            refused += 1
            if let heldBack = refusalLog.admit(now: Socket.monotonicNanos()) {
                log.warn("admin connection refused: too many open on its port",
                         ["port": "\(port)", "open": "\(maxLivePerPort)", "not_logged_since_last_line": "\(heldBack)"])
            }
            return
        }
        let c = AdminConnection(port: port, routes: routes)
        guard let s = try? TCPStream(loop: loop, fd: fd, connecting: false, delegate: c) else { return }
        c.stream = s
        live[ObjectIdentifier(c)] = c
        livePerPort[port, default: 0] += 1
        // A client that never finishes its request is dropped.
        c.timer = loop.schedule(after: 10_000_000_000) { [weak c] in c?.finish() }
    }

    private init(port: AdminRoutes.Port, routes: AdminRoutes) {
        self.port = port
        self.routes = routes
    }

    func tcpStream(_ s: TCPStream, received bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        switch parser.feed(bytes) {
        case .needMore:
            return
        case let .bad(status, reason):
            reply(AdminRoutes.Response(status: status, contentType: "text/plain", body: reason + "\n"), head: false)
        case let .request(request):
            switch routes.handle(port, request) {
            case let .now(response):
                reply(response, head: request.method == "HEAD")
            case let .later(deferred):
                answered = true
                pending = deferred
                s.loop.cancel(timer)
                let end = Socket.monotonicNanos() + deferred.duration
                tick(deferred, until: end, loop: s.loop, head: request.method == "HEAD")
            }
        }
    }

    private func tick(_ deferred: AdminRoutes.Deferred, until end: UInt64, loop: EventLoop, head: Bool) {
        guard pending === deferred else { return }
        let now = Socket.monotonicNanos()
        guard now < end else {
            pending = nil
            reply(deferred.complete(), head: head)
            return
        }
        deferred.tick()
        timer = loop.schedule(after: min(deferred.tickInterval, end - now)) { [weak self] in
            self?.tick(deferred, until: end, loop: loop, head: head)
        }
    }

    private func reply(_ r: AdminRoutes.Response, head: Bool) {
        answered = true
        var text = "HTTP/1.1 \(r.status) \(AdminConnection.reason(r.status))\r\nContent-Type: \(r.contentType)\r\nContent-Length: \(r.body.count)\r\nConnection: close\r\n"
        for (k, v) in r.headers.sorted(by: { $0.key < $1.key }) { text += "\(k): \(v)\r\n" }
        text += "\r\n"
        stream?.write(head ? Array(text.utf8) : Array(text.utf8) + r.body)
        stream?.shutdownWrite()
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }

    private func finish() {
        guard let s = stream else { return }
        stream = nil
        s.loop.cancel(timer)
        if let deferred = pending {
            pending = nil
            deferred.cancel()
        }
        s.close()
        if AdminConnection.live.removeValue(forKey: ObjectIdentifier(self)) != nil { AdminConnection.livePerPort[port, default: 1] -= 1 }
    }

    func tcpStreamConnected(_ s: TCPStream) {}
    func tcpStreamReadClosed(_ s: TCPStream) {
        if !answered { reply(AdminRoutes.Response(status: 400, contentType: "text/plain", body: "incomplete request\n"), head: false) }
        // A client that closes while its answer is pending (a profile) is gone: the profile stops.
        if s.pendingWriteBytes == 0 { finish() }
    }
    func tcpStream(_ s: TCPStream, wrote count: Int) {
        if answered && s.pendingWriteBytes == 0 && s.writeShut { s.loop.deferUntilEndOfPass { [self] in finish() } }
    }
    func tcpStream(_ s: TCPStream, failed errno: Int32) { finish() }
}
