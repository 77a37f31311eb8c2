/// When to try the control plane again after a stream ended, as ztunnel decides it: at once (10 ms)
/// after a clean end or the ways istiod recycles a stream (UNAVAILABLE "transport is closing" or
/// "received prior goaway", CANCELLED, DEADLINE_EXCEEDED, UNKNOWN), and otherwise (a connection that
/// failed, any other status) after a delay doubling from 10 ms to 15 s. Each delay is jittered by up
/// to ±20 % so a fleet of nodes does not reconnect in step.
public struct ReconnectBackoff: Sendable {
    public enum Ending: Sendable {
        /// The stream finished without an error status.
        case clean
        /// No stream: TCP, TLS or HTTP/2 could not be set up, or it broke without a status.
        case connectionFailed
        case status(GRPCStatus)
    }

    public static let initial: Duration = .milliseconds(10)
    public static let maximum: Duration = .seconds(15)
    private(set) var current: Duration = ReconnectBackoff.initial

    public init() {}

    /// The delay before the next attempt after `ending`, without jitter (tests), and the state for the next.
    public mutating func delay(after ending: Ending) -> Duration {
        if Self.isRecycle(ending) {
            current = Self.initial
            return Self.initial
        }
        current = min(Self.maximum, current * 2)
        return current
    }

    /// `delay(after:)` with ±20 % jitter.
    public mutating func jitteredDelay(after ending: Ending, using rng: inout some RandomNumberGenerator) -> Duration {
        let base = delay(after: ending)
        let factor = Double.random(in: 0.8...1.2, using: &rng)
        return base * factor
    }

    static func isRecycle(_ ending: Ending) -> Bool {
        switch ending {
        case .clean: return true
        case .connectionFailed: return false
        case let .status(s):
            switch s.code {
            case .unknown, .cancelled, .deadlineExceeded: return true
            case .unavailable: return s.message.contains("transport is closing") || s.message.contains("received prior goaway")
            default: return false
            }
        }
    }
}
