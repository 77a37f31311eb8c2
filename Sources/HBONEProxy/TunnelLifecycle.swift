/// The life of one proxied connection as a value: events in, actions out. Which transport carries
/// each side (a socket, or one HTTP/2 stream of an HBONE connection) is the shell's business
/// (`Tunnel`); this decides only what happens next, so every transition — the impossible ones
/// included, which answer `.bug` — is tested without I/O (`TunnelLifecycleTests`).
///
/// connecting ──connected──▶ established ──both sides ended and drained──▶ closed (clean)
///     │                          │
///     └─connectFailed/failed/terminate──────failed/terminate──────────────▶ closed (error)
///
/// Bytes do not pass through here: forwarding and flow control stay in the shell, on the hot path.
struct TunnelLifecycle: Equatable {
    /// The application's side (outbound: the app's socket; inbound: the CONNECT stream) and the
    /// destination's side (outbound: the CONNECT stream or plain socket; inbound: the workload's socket).
    enum Side: Equatable, CustomStringConvertible {
        case downstream, upstream
        var other: Side { self == .downstream ? .upstream : .downstream }
        var description: String { self == .downstream ? "downstream" : "upstream" }
    }

    enum Phase: Equatable { case connecting, established, closed }

    enum Event: Equatable {
        /// The upstream connect started (a socket connect, or a CONNECT sent on a pooled connection).
        case dialing
        /// The upstream is ready: TCP connected, or the CONNECT was answered 200.
        case connected
        /// The upstream could not be reached (refused, timed out, answered non-200, its connection
        /// failed). `retryable`: the server refused the stream unprocessed (GOAWAY), so it may be sent again.
        case connectFailed(ProxyError, retryable: Bool)
        /// That side sent EOF (FIN, or END_STREAM).
        case ended(Side)
        /// Everything owed to that side was delivered and its write half closed (a socket's queue
        /// is empty after FIN; a stream closed cleanly both ways).
        case drained(Side)
        /// That side broke (RST, socket error, stream reset, its HBONE connection lost).
        case failed(Side, ProxyError)
        /// Closed from outside: a policy change, the idle timeout, the drain deadline.
        case terminate(ProxyError)
    }

    enum Action: Equatable {
        case armConnectTimer
        case cancelConnectTimer
        /// Open the upstream again (a refused CONNECT goes to another connection, once).
        case retryUpstream
        /// The tunnel carries bytes now: count it as opened.
        case markEstablished
        /// 200 to a CONNECT downstream, the SOCKS5 success reply to a SOCKS5 client.
        case answerDownstream
        /// Send what the downstream said before the upstream was ready.
        case forwardEarlyData
        case resumeDownstream
        /// FIN, or END_STREAM, towards that side.
        case endWrite(Side)
        /// The downstream learns the tunnel never opened: 503 to a CONNECT, a SOCKS5 failure
        /// reply and FIN to a socket.
        case refuseDownstream(ProxyError)
        /// RST, or RST_STREAM, towards that side.
        case reset(Side)
        /// Release both sides (the clean end).
        case close
        /// The one record of the finished tunnel: metrics, access log, response flags.
        case record(ProxyError?)
        case bug(String)
    }

    // A clean tunnel's answers, made once: built at each event they were an array allocation
    // each, five per tunnel (scripts/bench-tunnel-cost.sh).
    private static let armTimer: [Action] = [.armConnectTimer]
    private static let establishedReading: [Action] = [.cancelConnectTimer, .markEstablished, .answerDownstream, .forwardEarlyData, .resumeDownstream]
    private static let establishedEnded: [Action] = [.cancelConnectTimer, .markEstablished, .answerDownstream, .forwardEarlyData, .endWrite(.upstream)]
    private static let endUpstream: [Action] = [.endWrite(.upstream)]
    private static let endDownstream: [Action] = [.endWrite(.downstream)]
    private static let cleanClose: [Action] = [.close, .record(nil)]

    private(set) var phase = Phase.connecting
    private var ended = (downstream: false, upstream: false)
    private var drained = (downstream: false, upstream: false)
    private var timerArmed = false
    private var retried = false

    static func == (a: TunnelLifecycle, b: TunnelLifecycle) -> Bool {
        a.phase == b.phase && a.ended == b.ended && a.drained == b.drained && a.timerArmed == b.timerArmed && a.retried == b.retried
    }

    func hasEnded(_ side: Side) -> Bool { side == .downstream ? ended.downstream : ended.upstream }
    func hasDrained(_ side: Side) -> Bool { side == .downstream ? drained.downstream : drained.upstream }

    mutating func handle(_ event: Event) -> [Action] {
        switch phase {
        case .connecting: return connecting(event)
        case .established: return established(event)
        case .closed: return []   // late reports from a side the tunnel already closed are expected
        }
    }

    private mutating func connecting(_ event: Event) -> [Action] {
        switch event {
        case .dialing:
            guard !timerArmed else { return [.bug("upstream dialed twice")] }
            timerArmed = true
            return Self.armTimer
        case .connected:
            guard timerArmed else { return [.bug("upstream connected without being dialed")] }
            timerArmed = false
            phase = .established
            return ended.downstream ? Self.establishedEnded : Self.establishedReading
        case let .connectFailed(error, retryable):
            if retryable && !retried {
                retried = true
                return cancelTimer() + [.retryUpstream]
            }
            return close(cancelTimer() + [.refuseDownstream(error), .reset(.upstream), .record(error)])
        case .ended(.downstream):
            // The FIN waits: it follows the early data once the upstream is ready.
            guard !ended.downstream else { return [.bug("downstream ended twice")] }
            ended.downstream = true
            return []
        case .ended(.upstream):
            return [.bug("upstream ended before it was connected")]
        case let .drained(side):
            return [.bug("\(side) drained before the tunnel was established")]
        case let .failed(.downstream, error):
            return close(cancelTimer() + [.reset(.upstream), .record(error)])
        case let .failed(.upstream, error):
            return connecting(.connectFailed(error, retryable: false))
        case let .terminate(error):
            return close(cancelTimer() + [.reset(.downstream), .reset(.upstream), .record(error)])
        }
    }

    private mutating func established(_ event: Event) -> [Action] {
        switch event {
        case .dialing, .connected, .connectFailed:
            return [.bug("\(event) after the tunnel was established")]
        case let .ended(side):
            guard !hasEnded(side) else { return [.bug("\(side) ended twice")] }
            if side == .downstream { ended.downstream = true } else { ended.upstream = true }
            return side == .downstream ? Self.endUpstream : Self.endDownstream
        case let .drained(side):
            // A side is drained only after its write half was ended, which follows the other side's EOF.
            guard hasEnded(side.other) else { return [.bug("\(side) drained before its write half was ended")] }
            guard !hasDrained(side) else { return [.bug("\(side) drained twice")] }
            if side == .downstream { drained.downstream = true } else { drained.upstream = true }
            guard drained.downstream && drained.upstream else { return [] }
            return close(Self.cleanClose)
        case let .failed(side, error):
            return close([.reset(side.other), .record(error)])
        case let .terminate(error):
            return close([.reset(.downstream), .reset(.upstream), .record(error)])
        }
    }

    private mutating func cancelTimer() -> [Action] {
        guard timerArmed else { return [] }
        timerArmed = false
        return [.cancelConnectTimer]
    }

    private mutating func close(_ actions: [Action]) -> [Action] {
        phase = .closed
        return actions
    }
}
