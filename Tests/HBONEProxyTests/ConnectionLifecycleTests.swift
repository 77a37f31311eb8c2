import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import HBONEProxy

/// Every transition of an HBONE connection's lifecycle, the impossible ones included (they answer
/// `.bug` and change nothing): (role, events so far, next event) → (actions, phase).
@Suite struct ConnectionLifecycleTests {
    typealias E = ConnectionLifecycle.Event
    typealias A = ConnectionLifecycle.Action

    static let broken = ProxyError(.upstream, .connectionLost, "connection error: reset")
    static let tls = ProxyError(.upstream, .tls, "TLS handshake failed: bad certificate")
    static let flood = ProxyError(.downstream, .http2, "HTTP/2 protocol error: flood")
    static let timeout: Duration = .seconds(5)

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var role: ConnectionLifecycle.Role = .client
        var connecting = true
        var before: [E]
        var event: E
        var actions: [A]
        var phase: ConnectionLifecycle.Phase
        var description: String { name }
    }

    static let handshaking: [E] = [.tcpConnected]
    static let open: [E] = [.tcpConnected, .handshakeCompleted]
    static let settled: [E] = open + [.settingsReceived]

    static let cases: [Case] = [
        Case(name: "client connected: handshake starts", before: [], event: .tcpConnected, actions: [.startHandshake], phase: .handshaking),
        Case(name: "server starts handshaking", role: .server, connecting: false, before: [], event: .handshakeCompleted,
             actions: [.becameUsable], phase: .open),
        Case(name: "handshake complete: usable", before: handshaking, event: .handshakeCompleted, actions: [.becameUsable], phase: .open),
        Case(name: "SETTINGS cancel the handshake timer", before: open, event: .settingsReceived, actions: [.cancelHandshakeTimer], phase: .open),
        Case(name: "a later SETTINGS changes nothing", before: settled, event: .settingsReceived, actions: [], phase: .open),
        Case(name: "timeout while connecting", before: [], event: .handshakeTimerFired(timeout),
             actions: [.handshakeFailed(ProxyError(.upstream, .connect, "TLS handshake timed out after 5.0 seconds (TCP connect)", errno: ETIMEDOUT)), .leavePool,
                       .close(ProxyError(.upstream, .connect, "TLS handshake timed out after 5.0 seconds (TCP connect)", errno: ETIMEDOUT), linger: false)],
             phase: .closed),
        Case(name: "timeout in TLS", before: handshaking, event: .handshakeTimerFired(timeout),
             actions: [.handshakeFailed(ProxyError(.upstream, .tls, "TLS handshake timed out after 5.0 seconds", errno: ETIMEDOUT)), .leavePool,
                       .close(ProxyError(.upstream, .tls, "TLS handshake timed out after 5.0 seconds", errno: ETIMEDOUT), linger: false)],
             phase: .closed),
        Case(name: "timeout waiting for the preface", before: open, event: .handshakeTimerFired(timeout),
             actions: [.handshakeFailed(ProxyError(.upstream, .http2, "HTTP/2 preface and SETTINGS not received within 5.0 seconds")), .leavePool,
                       .close(ProxyError(.upstream, .http2, "HTTP/2 preface and SETTINGS not received within 5.0 seconds"), linger: false)],
             phase: .closed),
        Case(name: "TLS failure counts as a handshake failure", before: handshaking, event: .failed(tls, handshake: true, linger: false),
             actions: [.handshakeFailed(tls), .leavePool, .close(tls, linger: false)], phase: .closed),
        Case(name: "drain: GOAWAY, out of the pool", before: settled, event: .drain, actions: [.leavePool, .sendGoaway], phase: .draining),
        Case(name: "drain after the peer's GOAWAY: ours too", before: settled + [.goawayReceived], event: .drain, actions: [.sendGoaway], phase: .draining),
        Case(name: "drain twice: once", before: settled + [.drain], event: .drain, actions: [], phase: .draining),
        Case(name: "drain before usable: closes now", before: handshaking, event: .drain, actions: [.leavePool, .close(nil, linger: false)], phase: .closed),
        Case(name: "peer's GOAWAY: out of the pool", before: settled, event: .goawayReceived, actions: [.leavePool], phase: .draining),
        Case(name: "quiet while open: stays", before: settled, event: .quiet, actions: [], phase: .open),
        Case(name: "quiet while draining: closes cleanly", before: settled + [.drain], event: .quiet, actions: [.leavePool, .close(nil, linger: false)], phase: .closed),
        Case(name: "client: quiet after the server's GOAWAY closes", before: settled + [.goawayReceived], event: .quiet,
             actions: [.leavePool, .close(nil, linger: false)], phase: .closed),
        Case(name: "server: quiet after the client's GOAWAY waits (its last HEADERS may follow)", role: .server, connecting: false,
             before: [.handshakeCompleted, .settingsReceived, .goawayReceived], event: .quiet, actions: [], phase: .draining),
        Case(name: "server: the client's EOF after its GOAWAY closes cleanly", role: .server, connecting: false,
             before: [.handshakeCompleted, .settingsReceived, .goawayReceived], event: .peerFinished,
             actions: [.leavePool, .close(nil, linger: false)], phase: .closed),
        Case(name: "server: its own drain closes when quiet", role: .server, connecting: false,
             before: [.handshakeCompleted, .settingsReceived, .goawayReceived, .drain], event: .quiet,
             actions: [.leavePool, .close(nil, linger: false)], phase: .closed),
        Case(name: "BUG: EOF reported as finished while open", before: settled, event: .peerFinished,
             actions: [.bug("peerFinished while open")], phase: .open),
        Case(name: "broken while open", before: settled, event: .failed(broken, handshake: false, linger: false),
             actions: [.leavePool, .close(broken, linger: false)], phase: .closed),
        Case(name: "protocol error: linger", role: .server, connecting: false, before: [.handshakeCompleted, .settingsReceived],
             event: .failed(flood, handshake: false, linger: true), actions: [.leavePool, .close(flood, linger: true), .armLingerTimer], phase: .closed),
        Case(name: "lingering: the peer's close releases", before: settled + [.failed(flood, handshake: false, linger: true)], event: .peerClosed,
             actions: [.release], phase: .closed),
        Case(name: "lingering: the timer releases", before: settled + [.failed(flood, handshake: false, linger: true)], event: .lingerTimerFired,
             actions: [.release], phase: .closed),
        Case(name: "closed: late reports are ignored", before: settled + [.failed(broken, handshake: false, linger: false)], event: .quiet,
             actions: [], phase: .closed),
        Case(name: "closed: a late GOAWAY is ignored", before: settled + [.failed(broken, handshake: false, linger: false)], event: .goawayReceived,
             actions: [], phase: .closed),
        Case(name: "BUG: connected twice", before: handshaking, event: .tcpConnected, actions: [.bug("tcpConnected while handshaking")], phase: .handshaking),
        Case(name: "BUG: server 'connected'", role: .server, connecting: false, before: [], event: .tcpConnected,
             actions: [.bug("tcpConnected while handshaking")], phase: .handshaking),
        Case(name: "BUG: handshake complete before TCP", before: [], event: .handshakeCompleted,
             actions: [.bug("handshakeCompleted while connecting")], phase: .connecting),
        Case(name: "BUG: handshake complete twice", before: open, event: .handshakeCompleted, actions: [.bug("handshakeCompleted while open")], phase: .open),
        Case(name: "BUG: SETTINGS before TLS", before: [], event: .settingsReceived, actions: [.bug("settingsReceived while connecting")], phase: .connecting),
        Case(name: "BUG: handshake timer after SETTINGS", before: settled, event: .handshakeTimerFired(timeout),
             actions: [.bug("handshake timer fired after the peer's SETTINGS")], phase: .open),
        Case(name: "BUG: GOAWAY before the session", before: handshaking, event: .goawayReceived,
             actions: [.bug("goawayReceived while handshaking")], phase: .handshaking),
        Case(name: "BUG: linger timer without lingering", before: settled + [.failed(broken, handshake: false, linger: false)], event: .lingerTimerFired,
             actions: [.bug("lingerTimerFired without lingering")], phase: .closed),
        Case(name: "BUG: peer closed reported to an open lifecycle", before: settled, event: .peerClosed, actions: [.bug("peerClosed while open")], phase: .open),
    ]

    @Test(arguments: cases)
    func transition(_ c: Case) {
        expectTransition(from: ConnectionLifecycle(role: c.role, connecting: c.connecting), before: c.before, event: c.event,
                         actions: c.actions, phase: c.phase)
    }

    @Test func onlyAnOpenConnectionTakesStreams() {
        var lifecycle = ConnectionLifecycle(role: .client, connecting: true)
        #expect(!lifecycle.isUsable)
        _ = lifecycle.handle(.tcpConnected)
        #expect(!lifecycle.isUsable)
        _ = lifecycle.handle(.handshakeCompleted)
        #expect(lifecycle.isUsable)
        _ = lifecycle.handle(.goawayReceived)
        #expect(!lifecycle.isUsable)
    }
}
