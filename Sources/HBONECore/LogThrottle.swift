/// Lets a repeated warning through at most once per interval, and says on the line it lets through
/// how many were held back since the previous one: a flood (of accept failures, refused admin
/// connections, a peer's protocol errors) must not flood the log, yet none goes unmentioned.
/// A value owned by one loop; time is the caller's monotonic clock in nanoseconds.
public struct LogThrottle: Sendable {
    public let interval: UInt64
    private var lastLine: UInt64?
    private var heldBack = 0

    public init(intervalNanos: UInt64 = 1_000_000_000) {
        interval = intervalNanos
    }

    /// For an event at `now`: how many events were held back since the last line when this one
    /// should be logged, nil when it should be held back too.
    public mutating func admit(now: UInt64) -> Int? {
        if let lastLine, now &- lastLine < interval {
            heldBack += 1
            return nil
        }
        defer { lastLine = now; heldBack = 0 }
        return heldBack
    }
}
