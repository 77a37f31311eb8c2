import CHBONEPosix
import Glibc

/// The process's heap profiler (ztunnel's /debug/pprof/heap): while active, the `hbone`
/// executable's malloc records the call stack of about one allocation per `sampleInterval`
/// bytes allocated and counts it on that stack, as allocated and as live until it is freed
/// (`chbone_heap_profiler_set_active`). Off at start; when off, each allocation costs one more
/// load and branch. Binaries built without the sampler (tests that do not link it, sanitizer
/// builds) report it unavailable.
public enum HeapProfiler {
    /// jemalloc's lg_prof_sample:19, which ztunnel ships.
    public static let defaultSampleInterval: UInt64 = 512 * 1024

    public struct Status: Sendable, Equatable {
        public var available: Bool
        public var active: Bool
        /// Sampled allocations not freed yet.
        public var liveSamples: UInt64
        /// Call stacks recorded.
        public var stacks: UInt64
        public var dropped: UInt64
        public var sampleInterval: UInt64
    }

    public enum ActivationError: Error, Equatable, CustomStringConvertible {
        case unavailable
        case failed(String)

        public var description: String {
            switch self {
            case .unavailable: return "heap profiling is not built into this binary (sanitizer builds leave the sampler out)"
            case let .failed(why): return "the heap profiler could not start: \(why)"
            }
        }
    }

    public static var status: Status {
        var s = chbone_heap_status()
        chbone_heap_profiler_status(&s)
        return Status(available: s.available != 0, active: s.active != 0, liveSamples: s.live, stacks: s.stacks, dropped: s.dropped, sampleInterval: s.interval)
    }

    /// Starts or stops taking samples. Allocations sampled before stay in the profile until freed;
    /// starting again draws every thread's next sample afresh with `sampleInterval`, and restarts
    /// each stack's allocated figures from what it still holds.
    public static func setActive(_ active: Bool, sampleInterval: UInt64 = defaultSampleInterval) throws(ActivationError) {
        guard chbone_heap_profiler_available() != 0 else { throw .unavailable }
        if chbone_heap_profiler_set_active(active ? 1 : 0, max(sampleInterval, 1)) != 0 {
            throw .failed(String(cString: strerror(errno)))
        }
    }

    /// Every stack's figures now.
    public static func snapshot() -> HeapProfile {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let taken = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        let before = status
        var capacity = Int(before.stacks) + 64
        var stacks: [HeapProfile.Stack] = []
        while true {
            let buffer = UnsafeMutableBufferPointer<chbone_heap_stack>.allocate(capacity: capacity)
            defer { buffer.deallocate() }
            let n = Int(chbone_heap_profiler_snapshot(buffer.baseAddress, Int64(capacity)))
            if n <= capacity {
                stacks = buffer.prefix(n).map(Self.stack)
                break
            }
            capacity = n + 64   // more stacks were recorded since the count was read
        }
        return HeapProfile(sampleInterval: before.sampleInterval, takenWallNanos: taken, stacks: stacks, dropped: status.dropped)
    }

    private static func stack(_ raw: chbone_heap_stack) -> HeapProfile.Stack {
        var raw = raw
        let depth = Int(min(max(raw.depth, 0), Int32(CHBONE_HEAP_MAX_FRAMES)))
        let frames = withUnsafeBytes(of: &raw.frames) { Array($0.bindMemory(to: UInt64.self).prefix(depth)) }
        let unit = UInt64(CHBONE_HEAP_OBJECT_UNIT)
        return HeapProfile.Stack(frames: frames,
                                 liveObjects: Int64(clamping: (raw.live_objects + unit / 2) / unit), liveBytes: Int64(clamping: raw.live_bytes),
                                 allocatedObjects: Int64(clamping: (raw.allocated_objects + unit / 2) / unit),
                                 allocatedBytes: Int64(clamping: raw.allocated_bytes),
                                 liveSamples: Int(raw.live_samples), allocatedSamples: Int(raw.allocated_samples))
    }
}
