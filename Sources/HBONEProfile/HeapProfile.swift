import Glibc

/// The heap allocations sampled and still live at one moment (`HeapProfiler.snapshot()`): each
/// stack with the size asked for and how many sampled allocations of that size it holds.
public struct HeapProfile: Sendable {
    public struct Stack: Sendable, Equatable {
        /// Return addresses, innermost (the allocator's caller) first.
        public var frames: [UInt64]
        public var size: UInt64
        public var count: Int64
    }

    /// Mean bytes allocated between two samples.
    public let sampleInterval: UInt64
    public let takenWallNanos: Int64
    public let stacks: [Stack]
    /// Samples not kept since the sampler started: its table was full.
    public let dropped: UInt64

    public init(sampleInterval: UInt64, takenWallNanos: Int64, stacks: [Stack], dropped: UInt64) {
        self.sampleInterval = sampleInterval
        self.takenWallNanos = takenWallNanos
        self.stacks = stacks
        self.dropped = dropped
    }

    /// What `count` samples of `size` bytes stand for. Every allocated byte is equally likely to
    /// be sampled, so an allocation of `size` is sampled with probability 1 - exp(-size/interval);
    /// each sample stands for the inverse of that (Go's heap profile scales the same way).
    public static func estimate(size: UInt64, count: Int64, interval: UInt64) -> (objects: Double, bytes: Double) {
        guard size > 0, interval > 0 else { return (Double(count), 0) }
        let probability = -expm1(-Double(size) / Double(interval))
        let objects = Double(count) / probability
        return (objects, objects * Double(size))
    }

    /// The live heap these samples stand for, in bytes.
    public var estimatedBytes: Double {
        stacks.reduce(0) { $0 + Self.estimate(size: $1.size, count: $1.count, interval: sampleInterval).bytes }
    }
}
