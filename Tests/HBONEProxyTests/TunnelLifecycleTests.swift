import Testing
@testable import HBONEProxy

/// Every transition of a tunnel's lifecycle, the impossible ones included (they answer `.bug`
/// and change nothing): (events so far, next event) → (actions, phase).
@Suite struct TunnelLifecycleTests {
    typealias E = TunnelLifecycle.Event
    typealias A = TunnelLifecycle.Action

    static let refused = ProxyError(.upstream, .connect, "connection refused")
    static let reset = ProxyError(.downstream, .connectionLost, "socket error: reset")
    static let denied = ProxyError(.internal, .denied, "closed by policy change")

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var before: [E]
        var event: E
        var actions: [A]
        var phase: TunnelLifecycle.Phase
        var description: String { name }
    }

    static let dialed: [E] = [.dialing]
    static let open: [E] = [.dialing, .connected]

    static let cases: [Case] = [
        // connecting
        Case(name: "dial arms the connect timer", before: [], event: .dialing, actions: [.armConnectTimer], phase: .connecting),
        Case(name: "connected: answer, early data, read on", before: dialed, event: .connected,
             actions: [.cancelConnectTimer, .markEstablished, .answerDownstream, .forwardEarlyData, .resumeDownstream], phase: .established),
        Case(name: "connected after an early FIN: the FIN follows the early data", before: dialed + [.ended(.downstream)], event: .connected,
             actions: [.cancelConnectTimer, .markEstablished, .answerDownstream, .forwardEarlyData, .endWrite(.upstream)], phase: .established),
        Case(name: "connect failed: refuse, reset, record", before: dialed, event: .connectFailed(refused, retryable: false),
             actions: [.cancelConnectTimer, .refuseDownstream(refused), .reset(.upstream), .record(refused)], phase: .closed),
        Case(name: "pool failed before any dial: no timer to cancel", before: [], event: .connectFailed(refused, retryable: false),
             actions: [.refuseDownstream(refused), .reset(.upstream), .record(refused)], phase: .closed),
        Case(name: "refused stream: retried once", before: dialed, event: .connectFailed(refused, retryable: true),
             actions: [.cancelConnectTimer, .retryUpstream], phase: .connecting),
        Case(name: "refused again after the retry: fails", before: dialed + [.connectFailed(refused, retryable: true), .dialing],
             event: .connectFailed(refused, retryable: true),
             actions: [.cancelConnectTimer, .refuseDownstream(refused), .reset(.upstream), .record(refused)], phase: .closed),
        Case(name: "re-dial after the retry arms the timer again", before: dialed + [.connectFailed(refused, retryable: true)], event: .dialing,
             actions: [.armConnectTimer], phase: .connecting),
        Case(name: "downstream FIN waits", before: dialed, event: .ended(.downstream), actions: [], phase: .connecting),
        Case(name: "downstream broke: reset upstream, record", before: dialed, event: .failed(.downstream, reset),
             actions: [.cancelConnectTimer, .reset(.upstream), .record(reset)], phase: .closed),
        Case(name: "upstream broke while connecting is a connect failure", before: dialed, event: .failed(.upstream, refused),
             actions: [.cancelConnectTimer, .refuseDownstream(refused), .reset(.upstream), .record(refused)], phase: .closed),
        Case(name: "terminated while connecting", before: dialed, event: .terminate(denied),
             actions: [.cancelConnectTimer, .reset(.downstream), .reset(.upstream), .record(denied)], phase: .closed),
        Case(name: "BUG: dialed twice", before: dialed, event: .dialing, actions: [.bug("upstream dialed twice")], phase: .connecting),
        Case(name: "BUG: connected without a dial", before: [], event: .connected,
             actions: [.bug("upstream connected without being dialed")], phase: .connecting),
        Case(name: "BUG: downstream FIN twice", before: dialed + [.ended(.downstream)], event: .ended(.downstream),
             actions: [.bug("downstream ended twice")], phase: .connecting),
        Case(name: "BUG: upstream EOF before it connected", before: dialed, event: .ended(.upstream),
             actions: [.bug("upstream ended before it was connected")], phase: .connecting),
        Case(name: "BUG: drained before established", before: dialed, event: .drained(.downstream),
             actions: [.bug("downstream drained before the tunnel was established")], phase: .connecting),
        // established
        Case(name: "downstream FIN goes upstream", before: open, event: .ended(.downstream), actions: [.endWrite(.upstream)], phase: .established),
        Case(name: "upstream FIN goes downstream", before: open, event: .ended(.upstream), actions: [.endWrite(.downstream)], phase: .established),
        Case(name: "one side drained: wait for the other", before: open + [.ended(.downstream), .ended(.upstream)], event: .drained(.upstream),
             actions: [], phase: .established),
        Case(name: "both drained: close cleanly, record", before: open + [.ended(.downstream), .ended(.upstream), .drained(.upstream)],
             event: .drained(.downstream), actions: [.close, .record(nil)], phase: .closed),
        Case(name: "downstream broke: reset upstream", before: open, event: .failed(.downstream, reset),
             actions: [.reset(.upstream), .record(reset)], phase: .closed),
        Case(name: "upstream broke: reset downstream", before: open, event: .failed(.upstream, refused),
             actions: [.reset(.downstream), .record(refused)], phase: .closed),
        Case(name: "half-closed, then broke", before: open + [.ended(.downstream)], event: .failed(.upstream, refused),
             actions: [.reset(.downstream), .record(refused)], phase: .closed),
        Case(name: "terminated: reset both", before: open, event: .terminate(denied),
             actions: [.reset(.downstream), .reset(.upstream), .record(denied)], phase: .closed),
        Case(name: "BUG: connected twice", before: open, event: .connected, actions: [.bug("connected after the tunnel was established")], phase: .established),
        Case(name: "BUG: dialed when established", before: open, event: .dialing, actions: [.bug("dialing after the tunnel was established")], phase: .established),
        Case(name: "BUG: connect failure after established", before: open, event: .connectFailed(refused, retryable: false),
             actions: [.bug("connectFailed(connection refused, retryable: false) after the tunnel was established")], phase: .established),
        Case(name: "BUG: FIN twice", before: open + [.ended(.upstream)], event: .ended(.upstream), actions: [.bug("upstream ended twice")], phase: .established),
        Case(name: "BUG: drained before its write half ended", before: open, event: .drained(.downstream),
             actions: [.bug("downstream drained before its write half was ended")], phase: .established),
        Case(name: "BUG: drained twice", before: open + [.ended(.upstream), .drained(.downstream)], event: .drained(.downstream),
             actions: [.bug("downstream drained twice")], phase: .established),
        // closed
        Case(name: "closed: a late FIN is ignored", before: open + [.terminate(denied)], event: .ended(.upstream), actions: [], phase: .closed),
        Case(name: "closed: a late reset is ignored", before: dialed + [.connectFailed(refused, retryable: false)], event: .failed(.upstream, refused),
             actions: [], phase: .closed),
        Case(name: "closed: a late answer is ignored", before: dialed + [.failed(.downstream, reset)], event: .connected, actions: [], phase: .closed),
    ]

    @Test(arguments: cases)
    func transition(_ c: Case) {
        expectTransition(from: TunnelLifecycle(), before: c.before, event: c.event, actions: c.actions, phase: c.phase)
    }

    /// Whatever the order of the two FINs and drains, a clean tunnel records exactly once, without an error.
    @Test func everyOrderOfACleanEndRecordsOnce() {
        let orders: [[E]] = [
            [.ended(.downstream), .ended(.upstream), .drained(.upstream), .drained(.downstream)],
            [.ended(.upstream), .ended(.downstream), .drained(.downstream), .drained(.upstream)],
            [.ended(.downstream), .drained(.upstream), .ended(.upstream), .drained(.downstream)],
            [.ended(.upstream), .drained(.downstream), .ended(.downstream), .drained(.upstream)],
        ]
        for order in orders {
            var lifecycle = TunnelLifecycle()
            var all: [A] = []
            for e in Self.open + order { all += lifecycle.handle(e) }
            #expect(all.filter { if case .record = $0 { true } else { false } } == [.record(nil)], "\(order)")
            #expect(!all.contains(where: TunnelLifecycle.isBug), "\(order)")
        }
    }
}
