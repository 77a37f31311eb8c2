import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// What a `TCPStream` reports. Called on the loop thread; the stream stays valid during the call,
/// and the delegate may close it from inside any of these.
public protocol TCPStreamDelegate: AnyObject {
    func tcpStreamConnected(_ stream: TCPStream)
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer)
    /// The peer sent FIN: no more bytes will arrive. Writing is still possible (half-close).
    func tcpStreamReadClosed(_ stream: TCPStream)
    /// `count` queued bytes reached the kernel; the queue is now `stream.pendingWriteBytes` long.
    func tcpStream(_ stream: TCPStream, wrote count: Int)
    /// Connect failed, reset or I/O error. The stream is already closed.
    func tcpStream(_ stream: TCPStream, failed errno: Int32)
}

/// A non-blocking, edge-triggered TCP connection with a write queue. Reads go until EAGAIN
/// (bounded per pass) into the loop's scratch buffer; writes are batched into one flush per pass.
public final class TCPStream: Selectable {
    public enum State { case connecting, open, closed }

    public let loop: EventLoop
    /// -1 for an in-memory stream.
    public let fd: Int32
    /// Set for an in-memory stream (`MemoryNetwork`): its peer, buffers and addresses.
    let memory: MemoryEndpoint?
    /// Held strongly until the stream closes: the owner (a tunnel, a connection) and its stream
    /// keep each other alive while the socket is open, and closing breaks the cycle.
    public var delegate: TCPStreamDelegate?
    public private(set) var state: State
    public private(set) var readEOF = false
    public private(set) var writeShut = false
    private var registration: EventLoop.Registration?
    private var outbound = ByteQueue()
    private var shutdownRequested = false
    private var flushScheduled = false
    private var readScheduled = false
    /// Queued on the loop for the end of this pass (a flush, a read, or both).
    private var endOfPassQueued = false

    /// Most reads per event before yielding to other connections (fairness under load).
    static let readsPerEvent = 16

    /// Stops reading (backpressure); clearing it reads again at once, as edge-triggered events will
    /// not repeat, unless the last read drained the socket and no event came since.
    public var readPaused = false {
        didSet {
            if oldValue && !readPaused && !drained { scheduleRead() }
        }
    }
    /// Bytes were queued since the last sweep.
    private var wroteSinceSweep = false
    /// Keepalive is still to be switched on (`Socket.enableKeepalive`), at the first sweep that
    /// finds the stream open.
    private var keepalivePending: Bool
    /// The last read took all the kernel had (a short read or EAGAIN) and no readable event came
    /// since: nothing is waiting, and new bytes will raise an event.
    private var drained = false

    public var pendingWriteBytes: Int { outbound.count }
    /// Bytes the write queue holds allocated.
    public var writeQueueCapacity: Int { outbound.capacity }

    /// Takes ownership of `fd`: it is closed by `close()`/`abort()` or on failure.
    /// `deferKeepalive`: switch keepalive on at the first sweep (within about a second) rather
    /// than now; most proxied connections close before then, and each would pay four setsockopt
    /// calls for probes that start only after 180 idle seconds.
    public init(loop: EventLoop, fd: Int32, connecting: Bool, deferKeepalive: Bool = false, delegate: TCPStreamDelegate?) throws(SystemError) {
        self.loop = loop
        self.fd = fd
        self.memory = nil
        self.delegate = delegate
        self.state = connecting ? .connecting : .open
        self.keepalivePending = deferKeepalive
        do {
            registration = try loop.register(fd: fd, handler: self)
        } catch {
            Glibc.close(fd)
            state = .closed
            throw error
        }
    }

    /// An in-memory stream: bytes go to `memory.peer` instead of a socket.
    init(loop: EventLoop, memory: MemoryEndpoint, connecting: Bool, delegate: TCPStreamDelegate?) {
        self.loop = loop
        self.fd = -1
        self.memory = memory
        self.delegate = delegate
        self.state = connecting ? .connecting : .open
        self.keepalivePending = false
    }

    deinit {
        if state != .closed, memory == nil {
            if let registration { loop.deregister(registration) }
            Glibc.close(fd)
        }
    }

    public func handleEvent(readable: Bool, writable: Bool, read hint: ReadHint) {
        if state == .connecting {
            guard writable else { return }
            // Writable without an error or hang-up in the same event: the connect succeeded.
            let error = memory?.connectError ?? (hint == .readToEnd ? Socket.pendingError(fd) : 0)
            if error != 0 {
                fail(error)
                return
            }
            state = .open
            delegate?.tcpStreamConnected(self)
            if state != .open { return }
        }
        if writable && state == .open { flush() }
        if readable { drained = false }
        if readable && state == .open && readEOF && hint == .readToEnd {
            // After the peer's FIN only an error or hang-up raises a read edge. A reset (the peer
            // is gone) would otherwise wait for our next write, which a quiet other side of a
            // tunnel may never cause, and the stream would stay open.
            let error = memory?.pendingError ?? Socket.pendingError(fd)
            if error != 0 {
                fail(error)
                return
            }
        }
        if readable && state == .open && !readPaused && !readEOF { readLoop(hint) }
    }

    /// Queues bytes; they are written in one batch at the end of this loop pass.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        loop.assertInLoop()
        guard state != .closed, !shutdownRequested else { return }
        outbound.append(bytes)
        wroteSinceSweep = true
        scheduleFlush()
    }

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Sends FIN once every queued byte is written.
    public func shutdownWrite() {
        guard state != .closed, !shutdownRequested else { return }
        shutdownRequested = true
        scheduleFlush()
    }

    /// For the loop's sweep about once a second: a stream that queued nothing since the last sweep
    /// gives its emptied write queue back. A busy stream keeps it between passes: freeing and
    /// taking a large block each pass made glibc map and fault its pages in every time. An open
    /// stream that outlived a sweep gets its deferred keepalive.
    public func sweep() {
        if !wroteSinceSweep { outbound.releaseIfEmpty() }
        wroteSinceSweep = false
        if keepalivePending && state == .open {
            keepalivePending = false
            Socket.enableKeepalive(fd, loop.tcpKeepalive)
        }
    }

    /// Drops what is queued and refuses later writes; `close()` then sends only the FIN. For a
    /// peer that has already gone, which would answer anything more with a reset.
    public func discardOutput() {
        outbound = ByteQueue()
        shutdownRequested = true
        writeShut = true
    }

    /// Writes what is queued now, without waiting for the end of the pass (before a close).
    public func flushNow() {
        if state == .open { flush() }
    }

    /// Closes gracefully: queued bytes are dropped, the peer sees FIN.
    public func close() {
        guard state != .closed else { return }
        state = .closed
        delegate = nil
        outbound = ByteQueue()
        if let memory {
            memory.close(reset: false)
            return
        }
        if let registration { loop.deregister(registration, closing: true) }
        registration = nil
        Glibc.close(fd)
    }

    /// Closes with RST, so the peer sees a reset rather than EOF.
    public func abort() {
        guard state != .closed else { return }
        state = .closed
        delegate = nil
        outbound = ByteQueue()
        if let memory {
            memory.close(reset: true)
            return
        }
        if let registration { loop.deregister(registration, closing: true) }
        registration = nil
        Socket.abort(fd)
    }

    public var localAddress: SocketAddress? { memory?.local ?? Socket.localAddress(fd) }
    public var peerAddress: SocketAddress? { memory?.remote ?? Socket.peerAddress(fd) }

    /// Where a redirected connection was going (SO_ORIGINAL_DST); nil when it was not redirected.
    public func originalDestination() -> SocketAddress? {
        if let memory { return memory.originalDestination }
        return Socket.originalDestination(fd, ipv6: !(localAddress?.ip.isIPv4 ?? true))
    }

    // MARK: Internals

    /// `hint` says what the event reported (`ReadHint`): after a short read, the EAGAIN read (no
    /// FIN) or the read that would return 0 (FIN reported) is skipped, one syscall per wake-up.
    /// Reads not prompted by an event (resuming after backpressure) go on to EAGAIN or EOF.
    private func readLoop(_ hint: ReadHint = .readToEnd) {
        let scratch = loop.scratch
        for _ in 0..<TCPStream.readsPerEvent {
            switch memory?.read(into: scratch) ?? Socket.read(fd, into: scratch) {
            case let .bytes(n):
                let short = memory == nil && n < scratch.count
                drained = short && hint == .shortReadDrains
                delegate?.tcpStream(self, received: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                if state != .open || readPaused { return }
                guard short else { continue }
                switch hint {
                case .shortReadDrains: return
                case .shortReadThenEOF:
                    readEOF = true
                    delegate?.tcpStreamReadClosed(self)
                    return
                case .readToEnd: continue
                }
            case .wouldBlock:
                drained = memory == nil
                return
            case .eof:
                readEOF = true
                delegate?.tcpStreamReadClosed(self)
                return
            case let .error(e):
                fail(e)
                return
            }
        }
        scheduleRead()
    }

    private func scheduleRead() {
        guard !readScheduled, state == .open, !readEOF else { return }
        readScheduled = true
        queueForEndOfPass()
    }

    private func scheduleFlush() {
        guard !flushScheduled, state == .open else { return }
        flushScheduled = true
        queueForEndOfPass()
    }

    private func queueForEndOfPass() {
        guard !endOfPassQueued else { return }
        endOfPassQueued = true
        loop.deferUntilEndOfPass(self)
    }

    private func flush() {
        var written = 0
        while !outbound.isEmpty {
            var result = IOResult.wouldBlock
            _ = outbound.consume { bytes in
                result = memory?.write(bytes) ?? Socket.write(fd, bytes)
                if case let .bytes(n) = result { return n }
                return 0
            }
            switch result {
            case let .bytes(n):
                written += n
                if n == 0 { break }
                continue
            case .wouldBlock, .eof:
                break
            case let .error(e):
                fail(e)
                return
            }
            break
        }
        if outbound.isEmpty {
            if shutdownRequested && !writeShut {
                writeShut = true
                if let memory { memory.shutdownWrite() } else { Socket.shutdownWrite(fd) }
            }
        }
        if written > 0 { delegate?.tcpStream(self, wrote: written) }
    }

    private func fail(_ error: Int32) {
        guard state != .closed else { return }
        let delegate = self.delegate   // close() lets go of it; it still hears why
        close()
        delegate?.tcpStream(self, failed: error)
    }
}

extension TCPStream: EndOfPassWork {
    /// The loop's call at the end of a pass: the scheduled flush, then the scheduled read.
    public func runAtEndOfPass() {
        endOfPassQueued = false
        if flushScheduled {
            flushScheduled = false
            if state == .open { flush() }
        }
        if readScheduled {
            readScheduled = false
            if state == .open && !readPaused && !readEOF { readLoop() }
        }
    }
}
