import Testing
@testable import HBONEProxy

/// What the lifecycle transition tables need of a lifecycle value.
protocol TestableLifecycle: Equatable {
    associatedtype Event
    associatedtype Action: Equatable
    associatedtype Phase: Equatable
    var phase: Phase { get }
    mutating func handle(_ event: Event) -> [Action]
    static func isBug(_ action: Action) -> Bool
}

extension TunnelLifecycle: TestableLifecycle {
    static func isBug(_ action: Action) -> Bool { if case .bug = action { true } else { false } }
}

extension ConnectionLifecycle: TestableLifecycle {
    static func isBug(_ action: Action) -> Bool { if case .bug = action { true } else { false } }
}

/// Runs `before` (none of which may be a bug), then `event`: it must answer `actions` and leave
/// `phase`; an impossible event (a `.bug` answer) must change nothing.
func expectTransition<L: TestableLifecycle>(from start: L, before: [L.Event], event: L.Event, actions: [L.Action], phase: L.Phase,
                                            sourceLocation: SourceLocation = #_sourceLocation) {
    var lifecycle = start
    for e in before {
        #expect(!lifecycle.handle(e).contains(where: L.isBug), "set-up event \(e) was a bug", sourceLocation: sourceLocation)
    }
    let previous = lifecycle
    let answered = lifecycle.handle(event)
    #expect(answered == actions, sourceLocation: sourceLocation)
    #expect(lifecycle.phase == phase, sourceLocation: sourceLocation)
    if answered.contains(where: L.isBug) { #expect(lifecycle == previous, "an impossible event must change nothing", sourceLocation: sourceLocation) }
}
