#if canImport(Glibc)
import Glibc
#endif
import HBONEConfig
import HBONECore
import HBONEEventLoop
import HBONEH2

/// One proxied TCP connection, whatever carries each side: outbound HBONE (the app's socket →
/// a CONNECT stream), inbound HBONE (a CONNECT stream → the workload's socket) and plain splices
/// (socket → socket: 15006, non-mesh destinations). `TunnelLifecycle` decides what happens; this
/// shell maps socket and stream reports to its events and its actions to sockets, streams and timers.
///
/// Bytes flow here directly. Flow control is end to end: a socket is read only while the other
/// side can take more (a stream below its send high-water mark, a socket below `highWater`), and a
/// stream's bytes are acknowledged (WINDOW_UPDATE) only once the socket they went to took them.
final class Tunnel: TCPStreamDelegate, StreamOwner {
    typealias Side = TunnelLifecycle.Side

    /// What carries one side.
    enum End {
        /// Outbound HBONE before the pool has given the tunnel a connection.
        case pending
        case socket(TCPStream)
        case stream(HBONEConnection, Int32)
        /// A stream the HTTP/2 session has closed (nothing more to send or reset).
        case closedStream
    }

    unowned let worker: Worker
    let id: Int
    var info: ConnectionInfo
    private(set) var lifecycle = TunnelLifecycle()
    private(set) var downstream: End
    private(set) var upstream: End
    /// Bytes the downstream socket sent before the upstream was ready (at most `earlyDataLimit`).
    private var earlyData: [UInt8] = []
    /// SOCKS5 downstream: the reply goes out once the tunnel is up or has failed.
    private var socksReply: Bool
    /// Bytes the tunnel wrote to a socket itself (the SOCKS5 reply downstream, the PROXY header
    /// upstream): they came from no stream, so no stream is acknowledged for them.
    private var ownBytes = (downstream: 0, upstream: 0)
    /// Inbound: the workload address and port admission authorized (policy changes judge it
    /// again); `info.dst` is what the CONNECT named, another address for a waypoint's tunnel.
    var admitted: SocketAddress?
    /// The policy generation and the destination workload its last re-check decided with (inbound):
    /// while neither changes, a new snapshot's re-check has nothing to decide again.
    var policyJudged: (generation: Int, workload: Workload)?
    /// Written to the upstream socket once it connects, before anything relayed (an application
    /// tunnel's PROXY header).
    var upstreamPreamble: [UInt8] = []
    private var connectTimer: EventLoop.TimerID?
    /// Outbound HBONE: opens the CONNECT again on another connection (a stream refused unprocessed).
    var reopen: (() -> Void)?
    /// In-pod mode: the pod whose namespace the upstream socket is made in.
    var pod: InPodWorkload?
    /// With `pod`, an inbound upstream is made from the original client's address (transparent),
    /// so the app sees its real peer.
    var transparentSource: IPAddress?
    private(set) var lastActivity: UInt64
    /// Events raised while actions run wait here, so actions always see the state they came from.
    /// The first in its own slot: a clean close raises one (a drained socket), and an array for it
    /// was an allocation per tunnel. The array stays empty and unallocated otherwise.
    private var queuedFirst: TunnelLifecycle.Event?
    private var queued: [TunnelLifecycle.Event] = []
    private var handling = false
    /// The side an HTTP/2 stream carries, if any: the downstream inbound, the upstream outbound.
    private let streamSide: Side
    /// A gateway leg (double HBONE's outer tunnel): its downstream is the in-memory socket of this
    /// HBONE connection, which carries the application's tunnel. A leg is not a connection of its
    /// own (the application's tunnel is the one counted and logged); its failure is that
    /// connection's (`Worker.tunnelFinished`).
    let isGatewayLeg: Bool
    private(set) weak var carried: HBONEConnection?
    /// Its downstream is an application's socket (not an HBONE stream).
    var downstreamIsSocket: Bool { streamSide != .downstream }

    /// Bytes held from a downstream socket before the upstream is ready; reading stops there.
    static let earlyDataLimit = 64 * 1024
    /// Socket-to-socket: the write queue above which the other socket is no longer read.
    static let highWater = 256 * 1024

    /// `info` is consumed: taken as an ordinary parameter, storing it copied it.
    init(worker: Worker, info: consuming ConnectionInfo, downstream: End, early: [UInt8] = [], socksReply: Bool = false, carrying: HBONEConnection? = nil) {
        self.worker = worker
        self.isGatewayLeg = carrying != nil
        self.carried = carrying
        self.info = consume info
        self.downstream = downstream
        self.upstream = .pending
        self.earlyData = early
        self.socksReply = socksReply
        self.lastActivity = worker.loop.now
        self.id = worker.nextTunnelID()
        if case .stream = downstream { streamSide = .downstream } else { streamSide = .upstream }
        switch downstream {
        case let .socket(tcp):
            tcp.delegate = self
            tcp.readPaused = true   // until the upstream is ready
        case let .stream(connection, stream):
            connection.adopt(stream: stream, owner: self)
        case .pending, .closedStream:
            Bug.report("tunnel created without a downstream")
        }
        worker.tunnelOpened(self)
    }

    // MARK: Upstream set-up

    /// Connects the upstream socket to `address`, failing at the connect timeout.
    func dial(_ address: SocketAddress) {
        do {
            upstream = .socket(try worker.network.connect(to: address, mark: worker.state.packetMark, loop: worker.loop,
                                                          namespace: pod?.netns, source: transparentSource.map { SocketAddress(ip: $0, port: 0) },
                                                          delegate: self))
        } catch {
            handle(.connectFailed(upstreamConnectError("to \(address): \(error)", errno: error.errno), retryable: false))
            return
        }
        handle(.dialing)
    }

    /// Outbound HBONE: opens the CONNECT stream on a ready connection.
    func attach(_ connection: HBONEConnection, authority: String, headers: [H2Header]) {
        guard lifecycle.phase == .connecting else { return }
        do {
            upstream = .stream(connection, try connection.openStream(authority: authority, headers: headers, owner: self))
            info.dstIdentity = connection.peerIdentity
        } catch {
            handle(.connectFailed(error, retryable: false))
            return
        }
        handle(.dialing)
    }

    /// Outbound HBONE: the pool could not give a connection.
    func poolFailed(_ error: ProxyError) {
        handle(.connectFailed(error, retryable: false))
    }

    /// Closes the tunnel now (policy change, idle timeout, drain deadline).
    func terminate(_ reason: ProxyError) { handle(.terminate(reason)) }

    // MARK: The lifecycle

    private func handle(_ event: TunnelLifecycle.Event) {
        guard !handling else {
            if queuedFirst == nil && queued.isEmpty { queuedFirst = event } else { queued.append(event) }
            return
        }
        handling = true
        for action in lifecycle.handle(event) { perform(action) }
        while let next = nextQueued() {
            for action in lifecycle.handle(next) { perform(action) }
        }
        // More than one waiting is rare: give the array's buffer back rather than keep it for the tunnel's life.
        if queued.capacity > 0 { queued = [] }
        handling = false
    }

    private func nextQueued() -> TunnelLifecycle.Event? {
        if let first = queuedFirst {
            queuedFirst = nil
            return first
        }
        return queued.isEmpty ? nil : queued.removeFirst()
    }

    private func perform(_ action: TunnelLifecycle.Action) {
        switch action {
        case .armConnectTimer:
            armConnectTimer()
        case .cancelConnectTimer:
            worker.loop.cancel(connectTimer)
            connectTimer = nil
        case .retryUpstream:
            upstream = .pending
            let again = reopen
            reopen = nil
            again?()
        case .markEstablished:
            if !isGatewayLeg { worker.tunnelEstablished(&info) }
        case .answerDownstream:
            switch downstream {
            case let .stream(connection, stream):
                // ztunnel's response baggage: who answered, for a client that cannot look it up.
                let state = worker.state
                let baggage = state.settings.responseBaggage ? info.dstWorkload.map { [H2Header("baggage", state.baggageHeader(for: $0))] } : nil
                connection.respond(stream: stream, status: 200, headers: baggage ?? [])
            case .socket where socksReply: writeSocksReply(Socks5Parser.succeeded)
            default: break
            }
        case .forwardEarlyData:
            guard !earlyData.isEmpty else { return }
            let data = earlyData
            earlyData = []
            data.withUnsafeBytes { forward($0, from: .downstream) }
        case .resumeDownstream:
            if case let .socket(tcp) = downstream { tcp.readPaused = false }
        case let .endWrite(side):
            endWrite(side)
        case let .refuseDownstream(error):
            refuseDownstream(error)
        case let .reset(side):
            reset(side)
        case .close:
            if case let .socket(tcp) = downstream { tcp.close() }
            if case let .socket(tcp) = upstream { tcp.close() }
        case let .record(error):
            worker.loop.cancel(connectTimer)
            connectTimer = nil
            reopen = nil
            worker.tunnelFinished(self, error: error)
        case let .bug(message):
            Bug.report("tunnel \(info.direction.rawValue) \(info.src) → \(info.dst): \(message)")
        }
    }

    private func armConnectTimer() {
        let timeout = worker.state.settings.timeouts.connect
        worker.loop.cancel(connectTimer)
        connectTimer = worker.loop.schedule(after: timeout.nanoseconds) { [unowned self] in
            connectTimer = nil
            guard lifecycle.phase == .connecting else { return }
            if case let .stream(connection, _) = upstream {
                // A peer that takes the CONNECT and never answers (hung, stopped): no new tunnel
                // goes to that connection; the tunnels on it go on.
                log.warn("no response to CONNECT; the HBONE connection takes no new tunnels",
                         ["peer": "\(connection.peerAddress)", "peer_identity": connection.peerIdentity?.description ?? "-",
                          "dst.addr": "\(info.dst)", "timeout": "\(timeout)"])
                connection.markUnhealthy()
                handle(.connectFailed(ProxyError(.upstream, .connect, "503: no response to CONNECT within \(timeout)", errno: ETIMEDOUT), retryable: false))
            } else {
                handle(.connectFailed(upstreamConnectError("to \(info.dst) timed out after \(timeout)", errno: ETIMEDOUT), retryable: false))
            }
        }
    }

    private func endWrite(_ side: Side) {
        switch end(side) {
        case let .socket(tcp):
            tcp.shutdownWrite()
            if tcp.pendingWriteBytes == 0 || tcp.state == .closed { handle(.drained(side)) }
        case let .stream(connection, stream):
            connection.finish(stream: stream)
        case .closedStream:
            handle(.drained(side))
        case .pending:
            Bug.report("tunnel: END towards a side that is not connected")
        }
    }

    private func refuseDownstream(_ error: ProxyError) {
        switch downstream {
        case let .stream(connection, stream):
            connection.respond(stream: stream, status: 503)
        case let .socket(tcp):
            // A SOCKS5 client always learns why (RFC 1928 reply), and the reply must reach it: it is
            // flushed and the socket closed with FIN, since an RST would discard it.
            if socksReply { writeSocksReply(Socks5Parser.replyCode(for: error)) }
            tcp.flushNow()
            tcp.close()
        case .pending, .closedStream:
            break
        }
    }

    private func reset(_ side: Side) {
        switch end(side) {
        case let .socket(tcp):
            tcp.abort()
        case let .stream(connection, stream):
            setEnd(side, .closedStream)
            connection.reset(stream: stream)
        case .pending, .closedStream:
            break
        }
    }

    private func writeSocksReply(_ code: UInt8) {
        guard case let .socket(tcp) = downstream else { return }
        socksReply = false
        let reply = Socks5Parser.reply(code)
        ownBytes.downstream += reply.count
        tcp.write(reply)
    }

    /// A socket upstream that could not be reached; a CONNECT downstream is answered 503, and says so.
    private func upstreamConnectError(_ what: String, errno: Int32?) -> ProxyError {
        ProxyError(.upstream, .connect, "\(streamSide == .downstream ? "503: " : "")upstream connect \(what)", errno: errno)
    }

    private func end(_ side: Side) -> End { side == .downstream ? downstream : upstream }

    private func setEnd(_ side: Side, _ end: End) {
        if side == .downstream { downstream = end } else { upstream = end }
    }

    private func side(of tcp: TCPStream) -> Side {
        if case let .socket(s) = downstream, s === tcp { return .downstream }
        return .upstream
    }

    // MARK: Bytes

    /// Moves bytes one side produced to the other, pausing the producer when the other is full.
    private func forward(_ bytes: UnsafeRawBufferPointer, from side: Side) {
        lastActivity = worker.loop.now
        if side == .downstream { info.addSent(bytes.count) } else { info.addReceived(bytes.count) }
        switch end(side.other) {
        case let .socket(tcp):
            tcp.write(bytes)
            if tcp.pendingWriteBytes >= Tunnel.highWater, case let .socket(producer) = end(side) { producer.readPaused = true }
        case let .stream(connection, stream):
            connection.send(stream: stream, bytes)
            if connection.isCongested(stream: stream), case let .socket(producer) = end(side) { producer.readPaused = true }
        case .pending, .closedStream:
            break
        }
    }

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        let side = side(of: stream)
        guard lifecycle.phase == .established else {
            // Before the upstream is ready: hold a bounded amount, then stop reading.
            lastActivity = worker.loop.now
            earlyData.append(contentsOf: bytes)
            if earlyData.count >= Tunnel.earlyDataLimit { stream.readPaused = true }
            if side == .upstream { Bug.report("tunnel: upstream socket read before it connected") }
            return
        }
        forward(bytes, from: side)
    }

    func tcpStream(_ stream: TCPStream, wrote count: Int) {
        let side = side(of: stream)
        var n = count
        func skipOwn(_ own: inout Int) {
            let skip = min(own, n)
            own -= skip
            n -= skip
        }
        if side == .downstream { skipOwn(&ownBytes.downstream) } else { skipOwn(&ownBytes.upstream) }
        switch end(side.other) {
        case let .stream(connection, id) where n > 0:
            connection.consume(stream: id, n)
        case let .socket(producer) where stream.pendingWriteBytes < Tunnel.highWater / 2 && lifecycle.phase == .established:
            producer.readPaused = false
        default:
            break
        }
        if stream.writeShut && stream.pendingWriteBytes == 0 && lifecycle.hasEnded(side.other) && !lifecycle.hasDrained(side) {
            handle(.drained(side))
        }
    }

    func tcpStreamConnected(_ stream: TCPStream) {
        if !upstreamPreamble.isEmpty, side(of: stream) == .upstream {
            ownBytes.upstream += upstreamPreamble.count
            stream.write(upstreamPreamble)
            upstreamPreamble = []
        }
        handle(.connected)
    }

    func tcpStreamReadClosed(_ stream: TCPStream) { handle(.ended(side(of: stream))) }

    func tcpStream(_ stream: TCPStream, failed errno: Int32) {
        let side = side(of: stream)
        if side == .upstream && lifecycle.phase == .connecting {
            handle(.connectFailed(upstreamConnectError("to \(info.dst) failed: \(errnoText(errno))", errno: errno), retryable: false))
        } else {
            handle(.failed(side, ProxyError(side == .downstream ? .downstream : .upstream, .connectionLost, "socket error: \(errnoText(errno))", errno: errno)))
        }
    }

    // MARK: Stream reports (the stream is the upstream outbound, the downstream inbound)

    func streamResponse(status: Int, headers: [H2Header]) {
        guard status != 200 else {
            // Who answered, when this proxy cannot know: a destination it has no workload for, or
            // the endpoint behind another network's gateway (ztunnel's derived destination: an
            // outbound tunnel with a CONNECT target). Read field by field: a computed property of
            // `info` copied the whole struct out of the tunnel.
            if info.dstWorkload == nil || (info.direction == .outbound && info.hboneTarget != nil), worker.state.settings.responseBaggage {
                let (baggage, rejected) = ProxyState.peerBaggage(headers.values("baggage"), identity: info.dstIdentity)
                info.dstBaggage = baggage
                if rejected { worker.stats.untrustedBaggage.wrappingIncrement(ordering: .relaxed) }
            }
            return handle(.connected)
        }
        let reason: String
        switch status {
        case 400: reason = "destination proxy answered 400 (bad request)"
        case 401: reason = "destination proxy answered 401 (authorization denied)"
        case 503: reason = "destination proxy answered 503 (upstream connect failed or unknown destination)"
        default: reason = "destination proxy answered \(status)"
        }
        handle(.connectFailed(ProxyError(.upstream, status == 401 ? .denied : .rejected, reason), retryable: false))
    }

    func streamData(_ bytes: UnsafeRawBufferPointer) { forward(bytes, from: streamSide) }

    func streamEnded() { handle(.ended(streamSide)) }

    func streamDrained() {
        if case let .socket(tcp) = end(streamSide.other), lifecycle.phase == .established { tcp.readPaused = false }
    }

    func streamClosed(errorCode: UInt32) {
        let side = streamSide
        let connection: HBONEConnection? = if case let .stream(c, _) = end(side) { c } else { nil }
        setEnd(side, .closedStream)
        if errorCode == H2ErrorCode.noError {
            if lifecycle.phase != .established {
                handle(.connectFailed(ProxyError(.upstream, .connectionLost, "the CONNECT stream closed without an answer"), retryable: false))
                return
            }
            // Closed after END_STREAM each way: the clean end. Closed with NO_ERROR any earlier is
            // the peer's RST_STREAM(NO_ERROR), a reset like any other (bytes either way are lost).
            if lifecycle.hasEnded(side) && lifecycle.hasEnded(side.other) {
                handle(.drained(side))
                return
            }
        }
        let cause = connection?.failure ?? ProxyError(side == .upstream ? .upstream : .downstream, .connectionLost,
                                                      errorCode == H2ErrorCode.connectError ? "HBONE connection lost" : "stream reset by peer (code \(errorCode))")
        if lifecycle.phase == .connecting && side == .upstream {
            // Never processed by the server (RFC 9113 §8.7): safe to send again, once.
            let retryable = errorCode == H2ErrorCode.refusedStream && reopen != nil
            // Lost before the answer is a failed connect (response_flags CONNECT), unless TLS or HTTP/2 says more.
            let code: ProxyError.Code = cause.code == .connectionLost ? .connect : cause.code
            handle(.connectFailed(ProxyError(cause.side, code, "tunnel failed before it was established: \(cause.reason)", errno: cause.errno),
                                  retryable: retryable))
        } else {
            handle(.failed(side, cause))
        }
    }
}
