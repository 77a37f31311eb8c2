import CHBONEPosix
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking UDP socket on one loop: bound (a server, SO_REUSEPORT so each loop has its own),
/// or connected to one peer (a client, which then hears from that peer only). Level-triggered for
/// reads, at most `readsPerEvent` datagrams per event; a send the kernel cannot take now is dropped,
/// as UDP allows, and reported false.
public final class UDPSocket: Selectable {
    public let loop: EventLoop
    public let fd: Int32
    /// The bound address (the real port when asked for port 0).
    public let address: SocketAddress
    private var registration: EventLoop.Registration?
    private let onDatagram: (UnsafeRawBufferPointer, SocketAddress) -> Void
    private var closed = false

    static let readsPerEvent = 64
    /// The largest datagram read; a DNS message over UDP is at most 65,535 bytes.
    public static let maxDatagram = 65_535

    /// A server socket bound to `address`, inside `namespace` when given (marked with `mark`).
    public convenience init(loop: EventLoop, bindingTo address: SocketAddress, reusePort: Bool = true, namespace: NetworkNamespace? = nil,
                            mark: Int32? = nil, onDatagram: @escaping (UnsafeRawBufferPointer, SocketAddress) -> Void) throws(SystemError) {
        let make = { () throws(SystemError) -> Int32 in try UDPSocket.open(bind: address, connect: nil, reusePort: reusePort, mark: mark) }
        try self.init(loop: loop, fd: try UDPSocket.make(in: namespace, make), onDatagram: onDatagram)
    }

    /// A client socket on a fresh ephemeral port, connected to `peer`.
    public convenience init(loop: EventLoop, connectingTo peer: SocketAddress, namespace: NetworkNamespace? = nil, mark: Int32? = nil,
                            onDatagram: @escaping (UnsafeRawBufferPointer, SocketAddress) -> Void) throws(SystemError) {
        let any = SocketAddress(ip: peer.ip.isIPv4 ? IPAddress.v4(0) : IPAddress.v6(0, 0), port: 0)
        let make = { () throws(SystemError) -> Int32 in try UDPSocket.open(bind: any, connect: peer, reusePort: false, mark: mark) }
        try self.init(loop: loop, fd: try UDPSocket.make(in: namespace, make), onDatagram: onDatagram)
    }

    /// Takes ownership of `fd`.
    private init(loop: EventLoop, fd: Int32, onDatagram: @escaping (UnsafeRawBufferPointer, SocketAddress) -> Void) throws(SystemError) {
        self.loop = loop
        self.fd = fd
        self.address = Socket.localAddress(fd) ?? SocketAddress(ip: .v4(0), port: 0)
        self.onDatagram = onDatagram
        do {
            registration = try loop.registerListener(fd: fd, handler: self)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private static func make(in namespace: NetworkNamespace?, _ body: () throws(SystemError) -> Int32) throws(SystemError) -> Int32 {
        if let namespace { return try namespace.run(body) }
        return try body()
    }

    private static func open(bind local: SocketAddress, connect peer: SocketAddress?, reusePort: Bool, mark: Int32?) throws(SystemError) -> Int32 {
        let fd = try Socket.bound(Int32(SOCK_DGRAM.rawValue), to: local, reusePort: reusePort, mark: mark)
        if let peer {
            var (p, plen) = Socket.makeSockaddr(peer)
            if withUnsafePointer(to: &p, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, plen) } }) != 0 {
                let error = SystemError("connect \(peer) (UDP)")
                Glibc.close(fd)
                throw error
            }
        }
        return fd
    }

    public func close() {
        guard !closed else { return }
        closed = true
        if let registration { loop.deregister(registration, closing: true) }
        registration = nil
        Glibc.close(fd)
    }

    deinit { close() }

    public func handleEvent(readable: Bool, writable: Bool, read: ReadHint) {
        let buffer = UnsafeMutableRawBufferPointer(rebasing: loop.scratch[..<min(loop.scratch.count, UDPSocket.maxDatagram)])
        for _ in 0..<UDPSocket.readsPerEvent {
            guard !closed else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
            }
            // Errors (EAGAIN, or an ICMP error queued on a connected socket) end this round; a
            // connected client's owner times the query out.
            guard n >= 0, let peer = Socket.socketAddress(storage) else { return }
            onDatagram(UnsafeRawBufferPointer(rebasing: buffer[..<n]), peer)
        }
    }

    /// Sends one datagram (`to` nil: to the connected peer).
    @discardableResult
    public func send(_ bytes: [UInt8], to peer: SocketAddress? = nil) -> Bool {
        guard !closed else { return false }
        let n: Int = bytes.withUnsafeBytes { b in
            guard let peer else { return Glibc.send(fd, b.baseAddress, b.count, chbone_msg_nosignal) }
            var (storage, length) = Socket.makeSockaddr(peer)
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, chbone_msg_nosignal, $0, length) }
            }
        }
        return n == bytes.count
    }
}
