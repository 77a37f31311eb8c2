import HBONECore

/// Where a proxy's TCP streams come from: the kernel's sockets in production (`SocketNetwork`), or
/// a `MemoryNetwork` on a virtual clock, so the whole data path runs in a test without sockets,
/// threads or sleeps. Only listening and connecting differ; everything after is a `TCPStream`.
public protocol StreamNetwork: AnyObject {
    /// Listens on `address` (port 0: any free port), inside `namespace` when given (a pod's, in-pod
    /// mode: transparent and marked). `onAccept` owns each accepted stream and gets the client's address.
    func listen(on address: SocketAddress, loop: EventLoop, namespace: NetworkNamespace?, mark: Int32?,
                onAccept: @escaping (TCPStream, SocketAddress) -> Void) throws(SystemError) -> any StreamListener
    /// Starts connecting to `address`, from inside `namespace` when given and from `source` when
    /// given (a transparent bind); the delegate learns the outcome (`tcpStreamConnected` or `failed`).
    func connect(to address: SocketAddress, mark: Int32?, loop: EventLoop, namespace: NetworkNamespace?, source: SocketAddress?,
                 delegate: TCPStreamDelegate?) throws(SystemError) -> TCPStream
}

extension StreamNetwork {
    /// In this process's own namespace.
    public func listen(on address: SocketAddress, loop: EventLoop,
                       onAccept: @escaping (TCPStream, SocketAddress) -> Void) throws(SystemError) -> any StreamListener {
        try listen(on: address, loop: loop, namespace: nil, mark: nil, onAccept: onAccept)
    }

    public func connect(to address: SocketAddress, mark: Int32?, loop: EventLoop, delegate: TCPStreamDelegate?) throws(SystemError) -> TCPStream {
        try connect(to: address, mark: mark, loop: loop, namespace: nil, source: nil, delegate: delegate)
    }
}

/// A bound listener of a `StreamNetwork`.
public protocol StreamListener: AnyObject {
    /// The bound address (the real port when asked for port 0).
    var address: SocketAddress { get }
    /// Called with a short reason per failed accept (resource pressure).
    var onFailure: ((String) -> Void)? { get set }
    /// Stops accepting at once.
    func close()
}

extension TCPListener: StreamListener {}

/// The kernel's TCP: SO_REUSEPORT listeners and non-blocking connects, tuned as the proxy wants them.
public final class SocketNetwork: StreamNetwork {
    public init() {}

    public func listen(on address: SocketAddress, loop: EventLoop, namespace: NetworkNamespace?, mark: Int32?,
                       onAccept: @escaping (TCPStream, SocketAddress) -> Void) throws(SystemError) -> any StreamListener {
        try TCPListener(loop: loop, address: address, namespace: namespace, mark: mark) { fd, peer in
            guard let peer else {
                Socket.abort(fd)
                return
            }
            do {
                onAccept(try TCPStream(loop: loop, fd: fd, connecting: false, delegate: nil), peer)
            } catch {
                log.warn("accepted connection could not be registered", ["error": "\(error)"])   // the fd is closed
            }
        }
    }

    public func connect(to address: SocketAddress, mark: Int32?, loop: EventLoop, namespace: NetworkNamespace?, source: SocketAddress?,
                        delegate: TCPStreamDelegate?) throws(SystemError) -> TCPStream {
        let fd: Int32
        if let namespace {
            fd = try namespace.run { () throws(SystemError) -> Int32 in
                try Socket.connect(to: address, from: source, mark: mark, transparent: source != nil)
            }
        } else {
            fd = try Socket.connect(to: address, from: source, mark: mark)
        }
        Socket.tune(fd, keepalive: nil)
        return try TCPStream(loop: loop, fd: fd, connecting: true, deferKeepalive: true, delegate: delegate)
    }
}
