import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on one loop. Accepted fds are non-blocking and tuned; `onAccept` owns them.
public final class TCPListener: Selectable {
    public let loop: EventLoop
    public let fd: Int32
    public let address: SocketAddress
    private var registration: EventLoop.Registration?
    private let onAccept: (Int32, SocketAddress?) -> Void
    public private(set) var acceptErrors = 0

    /// Accepts per readiness event; the listener is level-triggered, so the rest come next pass.
    static let acceptsPerEvent = 64

    /// `reusePort`: data-plane loops share a port (SO_REUSEPORT); single listeners must not, or a
    /// second process would silently share it.
    public init(loop: EventLoop, address: SocketAddress, reusePort: Bool = true, onAccept: @escaping (Int32, SocketAddress?) -> Void) throws(SystemError) {
        self.loop = loop
        self.fd = try Socket.listen(on: address, reusePort: reusePort)
        self.address = Socket.localAddress(fd) ?? address
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
        guard let registration else { return }
        loop.deregister(registration)
        self.registration = nil
        Glibc.close(fd)
    }

    deinit { close() }

    public func handleEvent(readable: Bool, writable: Bool) {
        for _ in 0..<TCPListener.acceptsPerEvent {
            guard registration != nil else { return }
            guard let (client, peer) = Socket.accept(fd) else {
                let e = errno
                if e != EAGAIN && e != EWOULDBLOCK && e != EINTR && e != ECONNABORTED {
                    // EMFILE and friends: count, log, keep serving; level-triggering retries next pass.
                    acceptErrors += 1
                    log.warn("accept failed", ["listener": "\(address)", "error": String(cString: strerror(e))])
                }
                return
            }
            Socket.tune(client)
            onAccept(client, peer)
        }
    }
}
