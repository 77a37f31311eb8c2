import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on one loop. Accepted fds are non-blocking and tuned; `onAccept` owns them.
///
/// Under resource pressure (EMFILE, ENFILE, ENOBUFS, ENOMEM) a level-triggered listener would
/// report readable on every pass and spin: instead it accepts-and-closes the pending connection
/// with the loop's reserved fd (the client sees a reset, not a hang), pauses for 100 ms doubling
/// to 1 s, logs at most once a second with a count, and reports each failure to `onFailure`.
public final class TCPListener: Selectable {
    public let loop: EventLoop
    public let fd: Int32
    public let address: SocketAddress
    private var registration: EventLoop.Registration?
    private let onAccept: (Int32, SocketAddress?) -> Void
    /// Called with a short reason (`emfile`, `enfile`, `enobufs`, `enomem`, `other`) per failed accept.
    public var onFailure: ((String) -> Void)?
    public private(set) var acceptErrors = 0
    public private(set) var paused = false
    private var closed = false
    private var backoff: UInt64 = TCPListener.initialBackoff
    private var resumeTimer: EventLoop.TimerID?
    private var throttle = LogThrottle()

    /// Accepts per readiness event; the listener is level-triggered, so the rest come next pass.
    static let acceptsPerEvent = 64
    /// First pause after running out of fds or memory; doubles per failure up to `maxBackoff`.
    public static let initialBackoff: UInt64 = 100_000_000
    public static let maxBackoff: UInt64 = 1_000_000_000

    /// `reusePort`: data-plane loops share a port (SO_REUSEPORT); single listeners must not, or a
    /// second process would silently share it.
    /// `namespace`: bound inside a pod's network namespace (transparent, `mark`ed), as in-pod mode does.
    public init(loop: EventLoop, address: SocketAddress, reusePort: Bool = true, namespace: NetworkNamespace? = nil, mark: Int32? = nil,
                onAccept: @escaping (Int32, SocketAddress?) -> Void) throws(SystemError) {
        self.loop = loop
        if let namespace {
            self.fd = try namespace.run { () throws(SystemError) -> Int32 in
                try Socket.listen(on: address, reusePort: reusePort, transparent: true, mark: mark)
            }
        } else {
            self.fd = try Socket.listen(on: address, reusePort: reusePort, mark: mark)
        }
        self.address = Socket.localAddress(fd) ?? address
        // Accepted sockets inherit TCP_NODELAY and the keepalive settings from the listener on
        // Linux: set once here instead of five setsockopt calls per connection.
        Socket.tune(fd, keepalive: loop.tcpKeepalive)
        self.onAccept = onAccept
        do {
            registration = try loop.registerListener(fd: fd, handler: self)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Stops accepting at once (drain starts here).
    public func close() {
        guard !closed else { return }
        closed = true
        loop.cancel(resumeTimer)
        resumeTimer = nil
        if let registration { loop.deregister(registration) }
        registration = nil
        Glibc.close(fd)
    }

    deinit { close() }

    public func handleEvent(readable: Bool, writable: Bool, read: ReadHint) {
        for _ in 0..<TCPListener.acceptsPerEvent {
            guard registration != nil else { return }
            guard let (client, peer) = Socket.accept(fd) else {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED { return }
                acceptFailed(e)
                return
            }
            backoff = TCPListener.initialBackoff
            onAccept(client, peer)
        }
    }

    private func acceptFailed(_ e: Int32) {
        acceptErrors += 1
        let reason: String
        switch e {
        case EMFILE: reason = "emfile"
        case ENFILE: reason = "enfile"
        case ENOBUFS: reason = "enobufs"
        case ENOMEM: reason = "enomem"
        default: reason = "other"
        }
        onFailure?(reason)
        if let heldBack = throttle.admit(now: Socket.monotonicNanos()) {
            log.warn("accept failed", ["listener": "\(address)", "error": String(cString: strerror(e)),
                                       "not_logged_since_last_line": "\(heldBack)", "paused_ms": "\(backoff / 1_000_000)"])
        }
        guard reason != "other" else { return }   // e.g. EPERM from a filter: the next connection may succeed
        // Take the pending connection off the backlog with the reserved fd, so it is refused (RST)
        // instead of waiting, then stop listening for a while: retrying now would only fail again.
        loop.withSpareFDReleased {
            if let (client, _) = Socket.accept(fd) { Socket.abort(client) }
        }
        pause()
    }

    private func pause() {
        guard !paused, !closed else { return }
        paused = true
        if let registration { loop.deregister(registration) }
        registration = nil
        let delay = backoff
        backoff = min(backoff * 2, TCPListener.maxBackoff)
        resumeTimer = loop.schedule(after: delay) { [weak self] in
            guard let self else { return }
            resumeTimer = nil
            paused = false
            guard !closed else { return }
            do {
                self.registration = try loop.registerListener(fd: fd, handler: self)
            } catch {
                log.error("listener could not resume", ["listener": "\(address)", "error": "\(error)"])
                pause()
            }
        }
    }
}
