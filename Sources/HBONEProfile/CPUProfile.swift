/// A finished CPU profile: how many times each call stack was seen on each thread. Addresses are
/// the process's own; `pprof()` names them.
public struct CPUProfile: Sendable {
    struct StackKey: Hashable {
        var frames: [UInt64]
        var thread: String
    }

    public let frequency: Int
    public let startedWallNanos: Int64
    public let durationNanos: Int64
    /// Innermost frame first (the interrupted instruction), then return addresses.
    public let stacks: [(frames: [UInt64], thread: String, count: Int64)]
    /// Samples lost because the ring filled between two drains.
    public let dropped: UInt64

    /// Samples in all.
    public var sampleCount: Int64 { stacks.reduce(0) { $0 + $1.count } }

    /// CPU time each sample stands for.
    public var periodNanos: Int64 { 1_000_000_000 / Int64(frequency) }
}
