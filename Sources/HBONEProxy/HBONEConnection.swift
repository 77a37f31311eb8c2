#if canImport(Glibc)
import Glibc
#endif
import HBONECore
import HBONEIdentity
import HBONEEventLoop
import HBONETLS
import HBONEH2

/// One mTLS + HTTP/2 connection between node proxies, carrying many CONNECT tunnels.
/// Server side: accepted on :15008. Client side: opened by the pool. Confined to its worker's loop.
/// One mTLS + HTTP/2 connection between node proxies, carrying many CONNECT tunnels.
/// Server side: accepted on :15008. Client side: opened by the pool. Confined to its worker's loop.
/// `ConnectionLifecycle` decides its phases; this shell feeds TLS and HTTP/2, maps their outcomes
/// and its timers to lifecycle events, and performs the actions.
final class HBONEConnection: TCPStreamDelegate, H2SessionDelegate {
    typealias Role = ConnectionLifecycle.Role

    unowned let worker: Worker
    let tcp: TCPStream
    let tls: TLSEngine
    private(set) var h2: H2Session?
    private(set) var lifecycle: ConnectionLifecycle
    private var owners = IntegerMap<Int32, StreamOwner>()
    let peerAddress: SocketAddress
    let localAddress: SocketAddress
    /// Server side: the local workload whose SVID we present.
    let localIdentity: SPIFFEID
    let startedAt: UInt64
    var poolKey: PoolKey?
    /// Client side: callbacks waiting for this connection to become usable.
    var waiters: [(Result<HBONEConnection, ProxyError>) -> Void] = []
    /// Streams promised to waiters but not yet opened (so the pool does not oversubscribe).
    var reservedStreams = 0
    /// The peer's root left the trust bundle: draining, and cut at the drain deadline.
    var distrusted = false
    /// The revocation lists the peer's chain was last checked against (`Worker.revocation`).
    var revocationChecked: [UInt8]
    /// A CONNECT on it went unanswered: out of the pool.
    private(set) var unhealthy = false
    /// Not pooled, made for one tunnel (double HBONE's inner connection, carried through a
    /// gateway): it closes once that tunnel is gone instead of idling for another.
    var singleUse = false
    private var handshakeTimer: EventLoop.TimerID?
    private var keepaliveTimer: EventLoop.TimerID?
    private var idleTimer: EventLoop.TimerID?
    private var lingerTimer: EventLoop.TimerID?
    /// Fires when the peer's certificate chain expires: no new tunnels on it from then on.
    private var peerExpiryTimer: EventLoop.TimerID?
    private var lastReceive: UInt64
    private var pingSentAt: UInt64?
    private var pumpScheduled = false
    private var teardownScheduled = false
    /// The peer's FIN ended the connection: what is still queued for it (SETTINGS, a PING, an
    /// alert) would only draw a reset, so the close sends nothing but our FIN.
    private var peerStoppedFirst = false
    /// The handshake failure's metric reason, when TLS named one (else the error's kind).
    private var handshakeFailureReason: String?
    private var loggedUntrustedAttribution = false
    /// Requests read in this `receive`, handled once it returns: a stream the same bytes already
    /// reset never costs an authorization decision or an upstream connect.
    private var pendingRequests: [(stream: Int32, headers: [H2Header], endStream: Bool)] = []
    /// DATA and END_STREAM that came in the same `receive` as their stream's request, for the
    /// tunnel the request makes (a client may send before our answer).
    private var pendingData: [Int32: (bytes: [UInt8], ended: Bool)] = [:]
    /// Premature resets (before our answer) in the current one-second window.
    private var prematureResets = 0
    private var prematureWindowStart: UInt64 = 0
    /// Why the HTTP/2 session ended, when nghttp2 ended it for a peer's error (set in its callback).
    private var protocolFailure: ProxyError?

    /// Ciphertext queued on the socket above which we stop producing frames.
    static let socketHighWater = 512 * 1024
    /// TLS buffer capacity a quiet connection may keep.
    static let quietBufferLimit = 16 * 1024
    /// The most a closing connection waits for the peer to read our GOAWAY and close its side.
    static let lingerTime: UInt64 = 1_000_000_000

    /// Takes `tcp` (connecting for a client, open for a server); on a throw the caller still owns it.
    /// In-pod mode: the pod this connection was accepted in (inbound) or made from (outbound).
    var pod: InPodWorkload?

    init(worker: Worker, role: Role, tcp: TCPStream, context: TLSContext, verification: PeerVerification,
         peer: SocketAddress, local: SocketAddress) throws {
        self.worker = worker
        // A client starts connecting even on a stream already open (double HBONE's in-memory
        // one): the TCP connect is what starts its handshake, reported below.
        self.lifecycle = ConnectionLifecycle(role: role, connecting: role == .client || tcp.state == .connecting)
        self.peerAddress = peer
        self.localAddress = local
        self.localIdentity = context.identity
        self.tls = try TLSEngine(context: context, verification: verification, chainCache: worker.chainCache)
        self.revocationChecked = tls.revocationFingerprint
        self.tcp = tcp
        self.startedAt = worker.loop.now
        self.lastReceive = worker.loop.now
        tcp.delegate = self
        // The handshake timeout covers TLS and the HTTP/2 preface + SETTINGS: a peer that
        // completes TLS and then says nothing is dropped like one that stalls in TLS.
        let timeout = worker.state.settings.timeouts.handshake
        handshakeTimer = worker.loop.schedule(after: timeout.nanoseconds) { [unowned self] in
            handshakeTimer = nil
            handle(.handshakeTimerFired(timeout))
        }
        if role == .client && tcp.state == .open { handle(.tcpConnected) }
    }

    var role: Role { lifecycle.role }
    var phase: ConnectionLifecycle.Phase { lifecycle.phase }
    var failure: ProxyError? { lifecycle.failure }
    var peerIdentity: SPIFFEID? { tls.peerIdentity }
    var openStreams: Int { owners.count }
    var isUsable: Bool { lifecycle.isUsable && !unhealthy && !(h2?.goawayReceived ?? true) }

    /// Streams this connection may still take: our pool limit and the server's own limit.
    var streamCapacity: Int {
        let limit = min(worker.state.settings.pool.maxStreamsPerConnection, h2?.peerMaxConcurrentStreams ?? Int.max)
        return limit - owners.count - reservedStreams
    }

    private var side: ProxyError.Side { lifecycle.side }
    private var beforeUsable: Bool { phase == .connecting || phase == .handshaking }

    // MARK: The lifecycle

    private func handle(_ event: ConnectionLifecycle.Event) {
        for action in lifecycle.handle(event) { perform(action) }
    }

    private func perform(_ action: ConnectionLifecycle.Action) {
        switch action {
        case .startHandshake:
            if case let .failed(error) = tls.handshake() {
                handshakeFailureReason = error.code
                handle(.failed(ProxyError(side, .tls, error.reason), handshake: true, linger: false))
                return
            }
            flushTLS()
        case .cancelHandshakeTimer:
            worker.loop.cancel(handshakeTimer)
            handshakeTimer = nil
        case .becameUsable:
            becameUsable()
        case .sendGoaway:
            h2?.goaway()
            pump()
        case .leavePool:
            worker.pool.remove(self)
        case let .handshakeFailed(error):
            worker.stats.handshakeFailed(reason: handshakeFailureReason ?? error.code.rawValue)
            if handshakeFailureReason == "revoked" { worker.stats.revoked(asServer: role == .server) }
            log.warn("HBONE handshake failed", ["role": role == .server ? "server" : "client", "peer": "\(peerAddress)",
                                                "local_identity": localIdentity.description, "error": error.reason])
        case let .close(error, linger):
            if linger, let error {
                log.info("HBONE connection closed after an HTTP/2 protocol error", ["peer": "\(peerAddress)", "peer_identity": peerIdentity?.description ?? "-",
                                                                                     "error": error.reason])
            } else if let error {
                log.debug("HBONE connection failed", ["peer": "\(peerAddress)", "error": error.reason])
            }
            close(error, linger: linger)
        case .armLingerTimer:
            lingerTimer = worker.loop.schedule(after: HBONEConnection.lingerTime) { [unowned self] in
                lingerTimer = nil
                handle(.lingerTimerFired)
            }
        case .release:
            worker.loop.cancel(lingerTimer)
            lingerTimer = nil
            released()
        case let .bug(message):
            Bug.report("HBONE connection \(role == .server ? "server" : "client") \(peerAddress): \(message)")
        }
    }

    /// Fails the connection from outside (a distrusted root at the drain deadline, the proxy closing).
    func fail(_ error: ProxyError) { handle(.failed(error, handshake: beforeUsable, linger: false)) }

    /// What carried its bytes failed (double HBONE: the tunnel to the gateway): its tunnels and
    /// waiters learn that reason, and it is not counted as a failed handshake of its own.
    func carrierFailed(_ error: ProxyError) { handle(.failed(error, handshake: false, linger: false)) }

    /// Closes at once (the drain deadline): streams on it fail.
    func close() { fail(ProxyError(.internal, .closed, "HBONE connection closed by the proxy")) }

    /// From the worker's sweep: an HTTP/2 session that sent nothing since the last sweep gives its
    /// frame buffer's pages back (they come back with its next frame), TLS its emptied outgoing
    /// buffer, and the stream tables what a burst grew them to.
    func releaseIdleMemory() {
        h2?.releaseIdleMemory()
        tls.releaseIdleBuffers()
        owners.shrinkIfSparse()
    }

    /// GOAWAY; open streams finish, then the connection closes. Before it is usable: closes now.
    func startDrain() { handle(.drain) }

    // MARK: TCP events

    func tcpStreamConnected(_ stream: TCPStream) { handle(.tcpConnected) }

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        guard phase != .closed else { return }   // lingering after a protocol error: discard
        lastReceive = worker.loop.now
        tls.feed(bytes)
        process()
    }

    func tcpStreamReadClosed(_ stream: TCPStream) {
        if lifecycle.lingering { return handle(.peerClosed) }
        if phase == .draining && owners.isEmpty {
            handle(.peerFinished)
        } else {
            // Only when this FIN is what ends it: an alert queued by a failure earlier in the pass still goes out.
            if !teardownScheduled { peerStoppedFirst = true }
            handle(.failed(ProxyError(side, .connectionLost, "peer closed the connection"), handshake: beforeUsable, linger: false))
        }
    }

    func tcpStream(_ stream: TCPStream, wrote count: Int) {
        if tcp.pendingWriteBytes < HBONEConnection.socketHighWater / 2 { pump() }
    }

    func tcpStream(_ stream: TCPStream, failed errno: Int32) {
        if lifecycle.lingering { return handle(.peerClosed) }
        let reason = phase == .connecting ? "connect to \(peerAddress) failed: \(errnoText(errno))" : "connection error: \(errnoText(errno))"
        handle(.failed(ProxyError(side, phase == .connecting ? .connect : .connectionLost, reason, errno: errno), handshake: beforeUsable, linger: false))
    }

    // MARK: TLS and HTTP/2 processing

    private var carriesFrames: Bool { phase == .open || phase == .draining }

    private func process() {
        if phase == .handshaking {
            switch tls.handshake() {
            case .inProgress:
                flushTLS()
                return
            case let .failed(error):
                flushTLS()   // the alert must reach the peer
                handshakeFailureReason = error.code
                handle(.failed(ProxyError(side, .tls, "TLS handshake failed: \(error.reason)"), handshake: true, linger: false))
                return
            case .complete:
                startSession()
            }
        }
        let buffer = worker.tlsScratch.plaintext
        while carriesFrames {
            switch tls.read(into: buffer) {
            case let .bytes(n):
                do {
                    try h2?.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                } catch {
                    // Fatal for the session (flood, bad preface): nghttp2 will send nothing more.
                    pendingRequests = []
                    pendingData = [:]
                    handle(.failed(ProxyError(side, .http2, "HTTP/2 protocol error: \(error)"), handshake: false, linger: true))
                    return
                }
                handlePendingRequests()
                if !carriesFrames { return }
                if h2?.terminatedByProtocolError == true {
                    // nghttp2 queued a GOAWAY for the peer's error: send it, then end the connection.
                    pump()
                    return
                }
            case .needMore:
                pump()
                return
            case .closed:
                handle(.failed(ProxyError(side, .connectionLost, "peer sent TLS close_notify"), handshake: false, linger: false))
                return
            case let .failed(error):
                flushTLS()
                // TLS 1.3: a server's rejection of our certificate arrives here, on the first read.
                let handshakeLike = role == .client && h2.map({ $0.openStreams == 0 }) ?? true && worker.loop.now - startedAt < 60_000_000_000
                if handshakeLike { handshakeFailureReason = error.code }
                handle(.failed(ProxyError(side, .tls, "TLS: \(error.reason)"), handshake: handshakeLike, linger: false))
                return
            }
        }
    }

    /// TLS is done: the HTTP/2 session starts (or the connection fails if it cannot).
    private func startSession() {
        // Begun under an earlier snapshot, the handshake was verified with its roots and trust
        // domains; what the current one no longer trusts fails here, as a new handshake would.
        if let (why, _) = worker.distrust(self) {
            handshakeFailureReason = "trust_changed"
            handle(.failed(ProxyError(side, .tls, "TLS handshake completed under a trust no longer in force: \(why)"), handshake: true, linger: false))
            return
        }
        switch worker.revocation(self) {
        case nil:
            break
        case let .revoked(why)?:
            handshakeFailureReason = "revoked"
            handle(.failed(ProxyError(side, .tls, "TLS handshake completed under revocation lists no longer in force: \(why)"), handshake: true, linger: false))
            return
        case .untracked?:
            handshakeFailureReason = "trust_changed"
            handle(.failed(ProxyError(side, .tls, "TLS handshake completed before revocation lists were configured: its peer's chain was not kept to check"),
                           handshake: true, linger: false))
            return
        }
        let settings = worker.state.settings
        var h2Settings = H2Settings()
        h2Settings.streamWindow = settings.h2.streamWindow
        h2Settings.connectionWindow = settings.h2.connectionWindow
        h2Settings.maxConcurrentStreams = settings.h2.maxConcurrentStreams
        do {
            h2 = try H2Session(role: role == .server ? .server : .client, settings: h2Settings, delegate: self)
        } catch {
            handle(.failed(ProxyError(.internal, .http2, "HTTP/2 session: \(error)"), handshake: true, linger: false))
            return
        }
        handle(.handshakeCompleted)
    }

    private func becameUsable() {
        tls.releaseHandshakeMemory()
        worker.stats.handshakeSucceeded(nanoseconds: worker.loop.now - startedAt)
        log.debug("HBONE connection established", ["role": role == .server ? "server" : "client", "peer": "\(peerAddress)",
                                                    "peer_identity": peerIdentity?.description ?? "-", "local_identity": localIdentity.description])
        scheduleKeepalive()
        schedulePeerExpiry()
        pump()
        let ready = waiters
        waiters = []
        for w in ready { w(.success(self)) }
        if role == .client && owners.isEmpty && reservedStreams == 0 { becameIdle() }
    }

    /// A connection authenticates its peer once, at the handshake. Once the peer's chain expires the
    /// connection takes no new tunnels (GOAWAY, out of the pool): a stolen key whose certificate was
    /// not renewed cannot keep opening tunnels on a connection kept alive past its end, and a peer
    /// that renewed opens a new connection with the new certificate. Open tunnels go on, so a
    /// long-lived application connection is not cut at each renewal.
    private func schedulePeerExpiry() {
        guard let notAfter = tls.peerNotAfter else { return }
        let seconds = max(0, notAfter - worker.wallClock())
        peerExpiryTimer = worker.loop.schedule(after: UInt64(min(seconds, 10 * 365 * 86_400)) * 1_000_000_000) { [unowned self] in
            peerExpiryTimer = nil
            guard lifecycle.isUsable else { return }
            log.info("HBONE connection: the peer's certificate expired, no new tunnels on it",
                     ["role": role == .server ? "server" : "client", "peer": "\(peerAddress)",
                      "peer_identity": peerIdentity?.description ?? "-", "open_tunnels": "\(owners.count)"])
            startDrain()
        }
    }

    /// Moves frames from nghttp2 through TLS to the socket, as far as the socket's queue allows.
    func pump() {
        guard carriesFrames, let h2 else { return }
        let room = HBONEConnection.socketHighWater - tcp.pendingWriteBytes
        if room > 0 && h2.wantsWrite {
            do {
                let failure = try TLSRecordGather.write(to: tls, scratch: worker.tlsScratch) { append in
                    _ = try h2.produce(limit: room, append)
                }
                if let failure { Bug.report("TLS write failed: \(failure)") }
            } catch {
                handle(.failed(ProxyError(.internal, .http2, "HTTP/2 send: \(error)"), handshake: false, linger: false))
                return
            }
        }
        flushTLS()
        if h2.terminatedByProtocolError && !h2.wantsWrite {
            handle(.failed(protocolFailure ?? ProxyError(side, .http2, "HTTP/2 protocol error: connection ended with GOAWAY"), handshake: false, linger: true))
            return
        }
        if owners.isEmpty && !h2.wantsWrite { handle(.quiet) }
    }

    /// Batches frame production to the end of this loop pass.
    func schedulePump() {
        guard !pumpScheduled, carriesFrames else { return }
        pumpScheduled = true
        worker.loop.deferUntilEndOfPass(self)
    }

    private func flushTLS() {
        tls.takeCiphertext { tcp.write($0) }
    }

    // MARK: Streams

    /// Client side: opens a CONNECT tunnel to `authority` (`ip:port`, or a service's `hostname:port`).
    func openStream(authority: String, headers: [H2Header], owner: StreamOwner) throws(ProxyError) -> Int32 {
        guard let h2, phase == .open else { throw ProxyError(.upstream, .connectionLost, "HBONE connection is not open") }
        do {
            let id = try h2.connect(authority: authority, headers: headers)
            owners[id] = owner
            worker.loop.cancel(idleTimer)
            idleTimer = nil
            schedulePump()
            return id
        } catch {
            throw ProxyError(.internal, .http2, "CONNECT: \(error)")
        }
    }

    func adopt(stream: Int32, owner: StreamOwner) { owners[stream] = owner }

    func send(stream: Int32, _ bytes: UnsafeRawBufferPointer) { h2?.send(stream: stream, bytes); schedulePump() }
    func finish(stream: Int32) { h2?.finish(stream: stream); schedulePump() }
    func consume(stream: Int32, _ n: Int) { h2?.consume(stream: stream, n); schedulePump() }
    func isCongested(stream: Int32) -> Bool { h2?.isAboveHighWater(stream: stream) ?? false }

    func reset(stream: Int32, errorCode: UInt32 = H2ErrorCode.cancel) {
        owners[stream] = nil
        h2?.release(stream: stream)
        h2?.reset(stream: stream, errorCode: errorCode)
        schedulePump()
        streamGone()
    }

    func respond(stream: Int32, status: Int, headers: [H2Header] = []) {
        do {
            try h2?.respond(stream: stream, status: status, headers: headers)
        } catch {
            Bug.report("submit response failed: \(error)")
        }
        schedulePump()
    }

    private func streamGone() {
        if role == .client && owners.isEmpty && reservedStreams == 0 && phase == .open { becameIdle() }
        if phase == .draining && owners.isEmpty { schedulePump() }
    }

    /// The peer claimed a source address it may not speak for: counted every time, logged once
    /// per connection (a hostile peer must not be able to flood the log).
    func untrustedAttribution(_ claim: String) {
        worker.stats.untrustedAttributions.wrappingIncrement(ordering: .relaxed)
        guard !loggedUntrustedAttribution else { return }
        loggedUntrustedAttribution = true
        log.warn("ignoring forwarded source address the peer may not claim; using the connection's address",
                 ["peer": "\(peerAddress)", "peer_identity": peerIdentity?.description ?? "-", "claimed": claim])
    }

    // MARK: H2 events

    func h2(_ session: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) {
        guard role == .server else { return }
        // Only our own GOAWAY refuses new streams; a client's GOAWAY (it is closing) does not, and
        // nghttp2 may send it ahead of the client's last HEADERS.
        if lifecycle.goawaySent {
            _ = try? session.respond(stream: stream, status: 503)
            return
        }
        pendingRequests.append((stream, headers, endStream))
    }

    /// Runs the requests the last `receive` read, skipping streams the peer already reset.
    private func handlePendingRequests() {
        guard !pendingRequests.isEmpty else { return }
        let requests = pendingRequests
        pendingRequests = []
        // Bytes of a stream that is gone or never gets a tunnel go back to the windows when
        // nghttp2 closes the stream (H2Session returns what was never consumed).
        defer { pendingData = [:] }
        for r in requests {
            // Draining still serves what arrived before: our GOAWAY promised these streams.
            guard carriesFrames, let h2, !h2.terminatedByProtocolError else { return }
            guard h2.isOpen(stream: r.stream) else { continue }
            worker.handleInboundRequest(connection: self, stream: r.stream, headers: r.headers, endStream: r.endStream)
            guard let held = pendingData.removeValue(forKey: r.stream) else { continue }
            if let owner = owners[r.stream] {
                if !held.bytes.isEmpty { held.bytes.withUnsafeBytes { owner.streamData($0) } }
                if held.ended { owners[r.stream]?.streamEnded() }
            } else if !held.bytes.isEmpty {
                h2.consume(stream: r.stream, held.bytes.count)   // refused: the window goes back now
            }
        }
    }

    func h2PeerSettingsReceived(_ session: H2Session) { handle(.settingsReceived) }

    func h2(_ session: H2Session, prematureReset stream: Int32) {
        let now = worker.loop.now
        if now - prematureWindowStart >= 1_000_000_000 {
            prematureWindowStart = now
            prematureResets = 0
        }
        prematureResets += 1
        let limit = worker.state.settings.h2.maxPrematureResetsPerSecond
        if prematureResets > limit && !session.terminatedByProtocolError {
            worker.h2ProtocolError(.rapidReset, connection: self, detail: "more than \(limit) streams reset before an answer within a second")
            protocolFailure = ProxyError(side, .http2, "HTTP/2 rapid reset: more than \(limit) streams reset by the peer before an answer within a second")
            pendingRequests = []
            pendingData = [:]
            session.terminate(errorCode: H2ErrorCode.enhanceYourCalm)
        }
    }

    func h2(_ session: H2Session, protocolError reason: H2ProtocolError, stream: Int32) {
        worker.h2ProtocolError(reason, connection: self, detail: stream == 0 ? "connection error" : "stream \(stream) reset")
        if stream == 0 && protocolFailure == nil {
            protocolFailure = ProxyError(side, .http2, "HTTP/2 protocol error (\(reason.rawValue)): connection ended with GOAWAY")
        }
    }

    func h2(_ session: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) {
        owners[stream]?.streamResponse(status: status, headers: headers)
        // A 200 that also ends the stream: the destination's FIN came with the answer. (A refusal
        // ends it too, and has already failed the tunnel.)
        if endStream && status == 200 { owners[stream]?.streamEnded() }
    }

    func h2(_ session: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        if let owner = owners[stream] {
            owner.streamData(bytes)
        } else if isPendingRequest(stream) {
            pendingData[stream, default: ([], false)].bytes.append(contentsOf: bytes)
        } else {
            // A tunnel already gone: give the window back so other streams keep flowing.
            session.consume(stream: stream, bytes.count)
        }
    }

    func h2(_ session: H2Session, endOfStream stream: Int32) {
        if let owner = owners[stream] {
            owner.streamEnded()
        } else if isPendingRequest(stream) {
            pendingData[stream, default: ([], false)].ended = true
        }
    }

    private func isPendingRequest(_ stream: Int32) -> Bool { pendingRequests.contains { $0.stream == stream } }

    func h2(_ session: H2Session, closed stream: Int32, errorCode: UInt32) {
        if let owner = owners.removeValue(forKey: stream) { owner.streamClosed(errorCode: errorCode) }
        streamGone()
    }

    func h2(_ session: H2Session, drained stream: Int32) { owners[stream]?.streamDrained() }

    func h2(_ session: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) {
        log.debug("GOAWAY received", ["peer": "\(peerAddress)", "last_stream": "\(lastStreamID)"])
        handle(.goawayReceived)
        if owners.isEmpty { schedulePump() }
    }

    func h2PingAcknowledged(_ session: H2Session) { pingSentAt = nil }

    // MARK: Timers

    private func scheduleKeepalive() {
        let timeouts = worker.state.settings.timeouts
        keepaliveTimer = worker.loop.schedule(after: timeouts.keepaliveInterval.nanoseconds) { [unowned self] in
            keepaliveTimer = nil
            guard carriesFrames else { return }
            let now = worker.loop.now
            if let sent = pingSentAt {
                if now - sent >= timeouts.keepaliveTimeout.nanoseconds {
                    log.warn("HBONE connection closed: keepalive PING unanswered", ["peer": "\(peerAddress)", "timeout": "\(timeouts.keepaliveTimeout)"])
                    handle(.failed(ProxyError(side, .http2, "keepalive PING unanswered for \(timeouts.keepaliveTimeout)"), handshake: false, linger: false))
                    return
                }
            } else if now - lastReceive >= timeouts.keepaliveInterval.nanoseconds {
                // Quiet: give back the TLS buffers a past burst grew (they never shrink on their own).
                tls.trimBuffers(above: HBONEConnection.quietBufferLimit)
                pingSentAt = now
                h2?.ping()
                pump()
            }
            scheduleKeepalive()
        }
    }

    /// A client connection without tunnels: pooled, it waits `idleTimeout` for another.
    private func becameIdle() {
        guard singleUse else { return armIdleTimer() }
        // At the end of the pass: this may run inside an nghttp2 callback.
        worker.loop.deferUntilEndOfPass { [weak self] in
            guard let self, phase == .open, owners.isEmpty, reservedStreams == 0 else { return }
            handle(.drain)
        }
    }

    private func armIdleTimer() {
        worker.loop.cancel(idleTimer)
        idleTimer = worker.loop.schedule(after: worker.state.settings.pool.idleTimeout.nanoseconds) { [unowned self] in
            idleTimer = nil
            if owners.isEmpty && reservedStreams == 0 { handle(.drain) }
        }
    }

    /// A CONNECT went unanswered: leave the pool so no new tunnel waits on this connection; the
    /// tunnels on it go on (or the keepalive ends them if the peer is really gone).
    func markUnhealthy() {
        guard !unhealthy else { return }
        unhealthy = true
        worker.pool.remove(self)
    }

    // MARK: Closing

    /// Streams on it fail and waiters learn why; the socket closes at the end of the pass (the H2
    /// session may be mid-callback), or half-closes and lingers after a protocol error.
    private func close(_ error: ProxyError?, linger: Bool) {
        worker.loop.cancel(handshakeTimer)
        worker.loop.cancel(keepaliveTimer)
        worker.loop.cancel(idleTimer)
        worker.loop.cancel(peerExpiryTimer)
        handshakeTimer = nil
        keepaliveTimer = nil
        idleTimer = nil
        peerExpiryTimer = nil
        if peerStoppedFirst {
            tcp.discardOutput()
        } else {
            flushTLS()
            if tcp.pendingWriteBytes > 0 { tcp.shutdownWrite() }
        }
        let lost = owners
        owners.removeAll()
        for (_, owner) in lost { owner.streamClosed(errorCode: H2ErrorCode.connectError) }
        let pending = waiters
        waiters = []
        for w in pending { w(.failure(error ?? ProxyError(.upstream, .connectionLost, "HBONE connection closed"))) }
        guard !teardownScheduled else { return }
        teardownScheduled = true
        worker.loop.deferUntilEndOfPass { [self] in
            tcp.flushNow()   // a TLS alert or GOAWAY still reaches the peer
            if linger && lifecycle.lingering && tcp.state == .open {
                // The linger timer (armed by the lifecycle) or the peer's close releases it.
                tcp.shutdownWrite()
                tcp.flushNow()
                return
            }
            if lifecycle.lingering {
                handle(.peerClosed)   // the socket is already gone: nothing to wait for
            } else {
                released()
            }
        }
    }

    /// The socket closes and the worker forgets this connection. The TCP stream and the HTTP/2
    /// session hold it strongly as their delegate: letting go of both breaks those cycles (later
    /// events of the current pass, such as frames after a GOAWAY in the same read, reach nobody).
    private func released() {
        tcp.close()
        h2?.delegate = nil
        worker.connectionClosed(self)
    }
}

extension HBONEConnection: EndOfPassWork {
    /// The loop's call at the end of the pass `schedulePump` asked for.
    func runAtEndOfPass() {
        pumpScheduled = false
        pump()
    }
}
