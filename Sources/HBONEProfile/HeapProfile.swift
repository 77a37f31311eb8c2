/// The heap as the sampler saw it at one moment (`HeapProfiler.snapshot()`): per call stack, the
/// allocations it holds and those it made since profiling was activated. Counts are what the
/// samples stand for: each sample of `size` bytes was taken with probability
/// 1 - e^(-size/interval) and counts as its inverse (Go's heap profile scales the same way).
public struct HeapProfile: Sendable {
    public struct Stack: Sendable, Equatable {
        /// Return addresses, innermost (the allocator's caller) first.
        public var frames: [UInt64]
        public var liveObjects: Int64
        public var liveBytes: Int64
        /// Since profiling was activated, plus what was still live from before.
        public var allocatedObjects: Int64
        public var allocatedBytes: Int64
        /// The samples behind those figures.
        public var liveSamples: Int
        public var allocatedSamples: Int

        public init(frames: [UInt64], liveObjects: Int64, liveBytes: Int64, allocatedObjects: Int64, allocatedBytes: Int64,
                    liveSamples: Int, allocatedSamples: Int) {
            self.frames = frames
            self.liveObjects = liveObjects
            self.liveBytes = liveBytes
            self.allocatedObjects = allocatedObjects
            self.allocatedBytes = allocatedBytes
            self.liveSamples = liveSamples
            self.allocatedSamples = allocatedSamples
        }
    }

    /// Mean bytes allocated between two samples.
    public let sampleInterval: UInt64
    public let takenWallNanos: Int64
    public let stacks: [Stack]
    /// Samples not recorded since the sampler started: its tables were full.
    public let dropped: UInt64

    public init(sampleInterval: UInt64, takenWallNanos: Int64, stacks: [Stack], dropped: UInt64) {
        self.sampleInterval = sampleInterval
        self.takenWallNanos = takenWallNanos
        self.stacks = stacks
        self.dropped = dropped
    }

    /// The live heap these samples stand for, in bytes.
    public var liveBytes: Int64 { stacks.reduce(0) { $0 + $1.liveBytes } }
}
