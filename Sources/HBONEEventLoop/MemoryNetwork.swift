#if canImport(Glibc)
import Glibc
#endif
import HBONECore

/// A flat in-memory IP network on one loop with a virtual clock: listeners by address, streams as
/// pairs of bounded byte queues with TCP's half-close, FIN and RST, connects that succeed, are
/// refused, or (for a black-holed address) never complete. Tests join proxies with it.
public final class MemoryNetwork {
    public let loop: EventLoop
    private var listeners: [SocketAddress: MemoryListener] = [:]
    private var blackholed: Set<SocketAddress> = []
    private var nextPort: UInt16 = 40_000

    public init(loop: EventLoop) {
        precondition(loop.virtualClock, "a MemoryNetwork runs on a loop with a virtual clock")
        self.loop = loop
    }

    /// The network as seen from `ip`: connections it opens come from `ip` and an ephemeral port.
    public func host(_ ip: IPAddress) -> StreamNetwork { MemoryHost(network: self, ip: ip) }

    /// Connects to `address` never complete (a SYN into the void): connect timeouts fire.
    public func blackhole(_ address: SocketAddress) { blackholed.insert(address) }

    /// Opens a connection from `source`. `redirectedTo`: delivered to that listener instead, with
    /// `address` as its original destination, as iptables REDIRECT/TPROXY capture does.
    public func connect(from source: SocketAddress, to address: SocketAddress, redirectedTo: SocketAddress? = nil,
                        delegate: TCPStreamDelegate?) -> TCPStream {
        let client = MemoryEndpoint(local: source, remote: address)
        let stream = TCPStream(loop: loop, memory: client, connecting: true, delegate: delegate)
        client.stream = stream
        let target = redirectedTo ?? address
        if blackholed.contains(target) { return stream }
        guard let listener = listener(at: target) else {
            client.connectError = ECONNREFUSED
            client.wake(readable: false, writable: true)
            return stream
        }
        let server = MemoryEndpoint(local: target, remote: source)
        server.originalDestination = redirectedTo == nil ? nil : address
        let accepted = TCPStream(loop: loop, memory: server, connecting: false, delegate: nil)
        server.stream = accepted
        client.peer = server
        server.peer = client
        loop.deferUntilEndOfPass {
            guard !listener.closed else {
                client.connectError = ECONNREFUSED
                client.wake(readable: false, writable: true)
                return
            }
            listener.onAccept(accepted, source)
            client.wake(readable: false, writable: true)
        }
        return stream
    }

    func listen(on address: SocketAddress, onAccept: @escaping (TCPStream, SocketAddress) -> Void) throws(SystemError) -> MemoryListener {
        var bound = address
        if bound.port == 0 { bound = SocketAddress(ip: address.ip, port: ephemeralPort()) }
        if let existing = listeners[bound], !existing.closed { throw SystemError("bind", errno: EADDRINUSE) }
        let listener = MemoryListener(network: self, address: bound, onAccept: onAccept)
        listeners[bound] = listener
        return listener
    }

    func remove(_ listener: MemoryListener) {
        if listeners[listener.address] === listener { listeners[listener.address] = nil }
    }

    /// A port no other connection of this network uses as its source.
    public func ephemeralPort() -> UInt16 {
        nextPort = nextPort == UInt16.max ? 40_000 : nextPort + 1
        return nextPort
    }

    private func listener(at address: SocketAddress) -> MemoryListener? {
        if let l = listeners[address] { return l }
        let any = SocketAddress(ip: address.ip.isIPv4 ? IPAddress("0.0.0.0")! : IPAddress("::")!, port: address.port)
        return listeners[any]
    }
}

/// One host's view of a `MemoryNetwork`.
final class MemoryHost: StreamNetwork {
    let network: MemoryNetwork
    let ip: IPAddress

    init(network: MemoryNetwork, ip: IPAddress) {
        self.network = network
        self.ip = ip
    }

    /// One flat network: namespaces and marks do not apply in memory.
    func listen(on address: SocketAddress, loop: EventLoop, namespace: NetworkNamespace?, mark: Int32?,
                onAccept: @escaping (TCPStream, SocketAddress) -> Void) throws(SystemError) -> any StreamListener {
        try network.listen(on: address, onAccept: onAccept)
    }

    func connect(to address: SocketAddress, mark: Int32?, loop: EventLoop, namespace: NetworkNamespace?, source: SocketAddress?,
                 delegate: TCPStreamDelegate?) throws(SystemError) -> TCPStream {
        let from = source.map { SocketAddress(ip: $0.ip, port: $0.port == 0 ? network.ephemeralPort() : $0.port) }
        return network.connect(from: from ?? SocketAddress(ip: ip, port: network.ephemeralPort()), to: address, delegate: delegate)
    }
}

final class MemoryListener: StreamListener {
    unowned let network: MemoryNetwork
    let address: SocketAddress
    let onAccept: (TCPStream, SocketAddress) -> Void
    var onFailure: ((String) -> Void)?
    private(set) var closed = false

    init(network: MemoryNetwork, address: SocketAddress, onAccept: @escaping (TCPStream, SocketAddress) -> Void) {
        self.network = network
        self.address = address
        self.onAccept = onAccept
    }

    func close() {
        guard !closed else { return }
        closed = true
        network.remove(self)
    }
}

/// One end of an in-memory stream: what its peer sent (bounded like a socket buffer, so
/// backpressure behaves as on a socket), FIN and RST from the peer, and readiness wake-ups
/// delivered at the end of the loop pass as epoll's would be.
final class MemoryEndpoint {
    /// The stream this end belongs to (it owns the endpoint).
    weak var stream: TCPStream?
    weak var peer: MemoryEndpoint?
    let local: SocketAddress
    let remote: SocketAddress
    var originalDestination: SocketAddress?
    var connectError: Int32 = 0
    private var inbox = ByteQueue()
    private var finReceived = false
    private var resetReceived = false
    private(set) var closed = false
    private var wakeReadable = false
    private var wakeWritable = false
    private var wakeScheduled = false

    /// Bytes one direction holds before the writer sees EAGAIN (a socket's buffers).
    static let capacity = 256 * 1024

    init(local: SocketAddress, remote: SocketAddress) {
        self.local = local
        self.remote = remote
    }

    /// What `SO_ERROR` would say: a reset from the peer.
    var pendingError: Int32 { resetReceived ? ECONNRESET : 0 }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if resetReceived { return .error(ECONNRESET) }
        if inbox.count > 0 {
            let n = inbox.consume { bytes in
                let n = min(bytes.count, buffer.count)
                buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n)
                return n
            }
            peer?.wake(readable: false, writable: true)   // room freed for the writer
            return .bytes(n)
        }
        return finReceived ? .eof : .wouldBlock
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        guard let peer, !peer.closed else { return .error(ECONNRESET) }
        let room = MemoryEndpoint.capacity - peer.inbox.count
        guard room > 0 else { return .wouldBlock }
        let n = min(room, bytes.count)
        peer.inbox.append(UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        peer.wake(readable: true, writable: false)
        return .bytes(n)
    }

    func shutdownWrite() {
        peer?.finReceived = true
        peer?.wake(readable: true, writable: false)
    }

    /// `reset`: the peer sees RST (its reads and writes fail); else FIN after what it has not read.
    func close(reset: Bool) {
        guard !closed else { return }
        closed = true
        guard let peer else { return }
        if reset { peer.resetReceived = true } else { peer.finReceived = true }
        peer.wake(readable: true, writable: true)
    }

    func wake(readable: Bool, writable: Bool) {
        wakeReadable = wakeReadable || readable
        wakeWritable = wakeWritable || writable
        guard !wakeScheduled, let stream else { return }
        wakeScheduled = true
        stream.loop.deferUntilEndOfPass { [weak self] in
            guard let self else { return }
            wakeScheduled = false
            let (r, w) = (wakeReadable, wakeWritable)
            wakeReadable = false
            wakeWritable = false
            guard let stream = self.stream, stream.state != .closed else { return }
            stream.handleEvent(readable: r, writable: w, read: .readToEnd)   // memory: read on to the end
        }
    }
}

extension TCPStream {
    /// Two open streams joined in memory on `loop`, as a connected socket pair would be: what one
    /// writes the other reads, with a socket's backpressure, FIN and RST. Runs on any loop (no
    /// virtual clock needed): the proxy carries an HBONE connection inside a tunnel this way.
    /// `a` sees `local` as its own address and `remote` as its peer's; `b` the other way round.
    public static func memoryPair(loop: EventLoop, local: SocketAddress, remote: SocketAddress) -> (a: TCPStream, b: TCPStream) {
        let endA = MemoryEndpoint(local: local, remote: remote), endB = MemoryEndpoint(local: remote, remote: local)
        endA.peer = endB
        endB.peer = endA
        let a = TCPStream(loop: loop, memory: endA, connecting: false, delegate: nil)
        let b = TCPStream(loop: loop, memory: endB, connecting: false, delegate: nil)
        endA.stream = a
        endB.stream = b
        return (a, b)
    }
}
