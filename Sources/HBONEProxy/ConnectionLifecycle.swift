#if canImport(Glibc)
import Glibc
#endif

/// The life of one HBONE connection (mTLS + HTTP/2 between node proxies) as a value: events in,
/// actions out. `HBONEConnection` is the shell: it feeds TLS and HTTP/2, maps their outcomes and
/// its timers to events, and performs the actions. Impossible events answer `.bug` and change nothing.
///
///   connecting ─tcpConnected─▶ handshaking ─handshakeCompleted─▶ open ─drain/goawayReceived─▶ draining
///   (client)                        │                             │                            │
///                                   └───────── failed ────────────┴── quiet / failed ──────────┴─▶ closed
///
/// `open` takes new streams; `draining` finishes the ones it has (GOAWAY sent or received) and
/// closes once quiet. After an HTTP/2 protocol error the connection closes `lingering`: its GOAWAY
/// is flushed and our side half-closed, input is discarded until the peer closes or `lingerTime`.
struct ConnectionLifecycle: Equatable {
    enum Role: Equatable { case server, client }
    enum Phase: Equatable { case connecting, handshaking, open, draining, closed }

    enum Event: Equatable {
        /// Client: the TCP connect completed.
        case tcpConnected
        /// TLS finished and the HTTP/2 session exists.
        case handshakeCompleted
        /// The peer's HTTP/2 SETTINGS arrived (the preface is complete).
        case settingsReceived
        /// The handshake timeout (it covers TLS and the HTTP/2 preface + SETTINGS) passed.
        case handshakeTimerFired(Duration)
        /// We stop taking streams: the pool's idle timeout, the proxy's drain, a distrusted root.
        case drain
        /// The peer sent GOAWAY: no new streams from us.
        case goawayReceived
        /// No stream is open and no frame waits to be sent.
        case quiet
        /// The peer closed its side (EOF) with no stream open: a clean end after GOAWAY.
        case peerFinished
        /// The connection broke. `handshake`: before it was usable (counted as a handshake failure);
        /// `linger`: after an HTTP/2 protocol error, so the GOAWAY can reach the peer.
        case failed(ProxyError, handshake: Bool, linger: Bool)
        /// The peer closed its side (EOF, or a socket error) while we linger.
        case peerClosed
        case lingerTimerFired
    }

    enum Action: Equatable {
        case startHandshake
        case cancelHandshakeTimer
        /// The connection is usable: keepalive on, waiters get it, an unused client arms its idle timer.
        case becameUsable
        case sendGoaway
        case leavePool
        /// Counted and logged as a failed handshake.
        case handshakeFailed(ProxyError)
        /// Streams on it fail, waiters learn why, the socket is closed (or half-closed to linger).
        case close(ProxyError?, linger: Bool)
        case armLingerTimer
        /// The lingering socket is released.
        case release
        case bug(String)
    }

    let role: Role
    private(set) var phase: Phase
    private(set) var settingsReceived = false
    private(set) var goawaySent = false
    private(set) var goawayReceived = false
    private(set) var lingering = false
    private(set) var failure: ProxyError?

    init(role: Role, connecting: Bool) {
        self.role = role
        self.phase = connecting ? .connecting : .handshaking
    }

    /// The peer's side in errors: a server's peer is downstream, a client's upstream.
    var side: ProxyError.Side { role == .server ? .downstream : .upstream }

    /// Takes new streams.
    var isUsable: Bool { phase == .open }

    mutating func handle(_ event: Event) -> [Action] {
        switch (phase, event) {
        case (.connecting, .tcpConnected):
            phase = .handshaking
            return [.startHandshake]
        case (.handshaking, .handshakeCompleted):
            phase = .open
            return [.becameUsable]
        case (.handshaking, .settingsReceived), (.open, .settingsReceived), (.draining, .settingsReceived):
            guard !settingsReceived else { return [] }   // a later SETTINGS frame changes values only
            settingsReceived = true
            return [.cancelHandshakeTimer]
        case let (.connecting, .handshakeTimerFired(timeout)):
            return fail(ProxyError(.upstream, .connect, "TLS handshake timed out after \(timeout) (TCP connect)", errno: ETIMEDOUT), handshake: true)
        case let (.handshaking, .handshakeTimerFired(timeout)):
            return fail(ProxyError(side, .tls, "TLS handshake timed out after \(timeout)", errno: ETIMEDOUT), handshake: true)
        case let (.open, .handshakeTimerFired(timeout)), let (.draining, .handshakeTimerFired(timeout)):
            guard !settingsReceived else { return [.bug("handshake timer fired after the peer's SETTINGS")] }
            return fail(ProxyError(side, .http2, "HTTP/2 preface and SETTINGS not received within \(timeout)"), handshake: true)
        case (.open, .drain):
            phase = .draining
            goawaySent = true
            return [.leavePool, .sendGoaway]
        case (.draining, .drain):
            guard !goawaySent else { return [] }
            goawaySent = true
            return [.sendGoaway]
        case (.connecting, .drain), (.handshaking, .drain):
            // Nothing to finish: it never carried a stream.
            phase = .closed
            return [.leavePool, .close(nil, linger: false)]
        case (.open, .goawayReceived):
            phase = .draining
            goawayReceived = true
            return [.leavePool]
        case (.draining, .goawayReceived):
            goawayReceived = true
            return []
        case (.open, .quiet):
            return []
        case (.draining, .quiet):
            // A client's GOAWAY does not end the connection for its server: HEADERS it sent just
            // before may still be on the way (nghttp2 puts GOAWAY ahead of them); the client closes
            // when it is done, and that EOF ends the connection (`peerFinished`).
            guard goawaySent || role == .client else { return [] }
            phase = .closed
            return [.leavePool, .close(nil, linger: false)]
        case (.draining, .peerFinished):
            phase = .closed
            return [.leavePool, .close(nil, linger: false)]
        case let (.connecting, .failed(error, handshake, linger)), let (.handshaking, .failed(error, handshake, linger)),
             let (.open, .failed(error, handshake, linger)), let (.draining, .failed(error, handshake, linger)):
            return fail(error, handshake: handshake, linger: linger)
        case (.closed, .peerClosed), (.closed, .lingerTimerFired):
            guard lingering else { return [.bug("\(event) without lingering")] }
            lingering = false
            return [.release]
        case (.closed, _):
            return []   // late reports from TLS, HTTP/2 or timers after the close are expected
        default:
            return [.bug("\(event) while \(phase)")]
        }
    }

    private mutating func fail(_ error: ProxyError, handshake: Bool, linger: Bool = false) -> [Action] {
        phase = .closed
        failure = error
        lingering = linger
        var actions: [Action] = handshake ? [.handshakeFailed(error)] : []
        actions += [.leavePool, .close(error, linger: linger)]
        if linger { actions.append(.armLingerTimer) }
        return actions
    }
}
