import CHBONEPosix
import Glibc

/// The process's heap profiler (ztunnel's /debug/pprof/heap): while active, the `hbone`
/// executable's malloc records the call stack of about one allocation per `sampleInterval`
/// bytes allocated, until that allocation is freed (`chbone_heap_profiler_set_active`). Off at
/// start; when off, each allocation costs one more load and branch. Binaries built without the
/// sampler (tests that do not link it, sanitizer builds) report it unavailable.
public enum HeapProfiler {
    /// jemalloc's lg_prof_sample:19, which ztunnel ships.
    public static let defaultSampleInterval: UInt64 = 512 * 1024

    public struct Status: Sendable, Equatable {
        public var available: Bool
        public var active: Bool
        /// Sampled allocations not freed yet.
        public var liveSamples: UInt64
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
        return Status(available: s.available != 0, active: s.active != 0, liveSamples: s.live, dropped: s.dropped, sampleInterval: s.interval)
    }

    /// Starts or stops taking samples. Allocations sampled before stay in the profile until freed;
    /// starting again draws every thread's next sample afresh with `sampleInterval`.
    public static func setActive(_ active: Bool, sampleInterval: UInt64 = defaultSampleInterval) throws(ActivationError) {
        guard chbone_heap_profiler_available() != 0 else { throw .unavailable }
        if chbone_heap_profiler_set_active(active ? 1 : 0, max(sampleInterval, 1)) != 0 {
            throw .failed(String(cString: strerror(errno)))
        }
    }

    /// The live sampled allocations now, grouped by stack and size.
    public static func snapshot() -> HeapProfile {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let taken = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        let interval = status.sampleInterval
        var capacity = Int(status.liveSamples) + 64
        var samples: [chbone_heap_sample] = []
        while true {
            let buffer = UnsafeMutableBufferPointer<chbone_heap_sample>.allocate(capacity: capacity)
            defer { buffer.deallocate() }
            let n = Int(chbone_heap_profiler_snapshot(buffer.baseAddress, Int64(capacity)))
            if n <= capacity {
                samples = Array(buffer.prefix(n))
                break
            }
            capacity = n + 64   // more were sampled since the count was read
        }
        struct Key: Hashable { var frames: [UInt64]; var size: UInt64 }
        var counts: [Key: Int64] = [:]
        for var sample in samples {
            let depth = Int(min(max(sample.depth, 0), Int32(CHBONE_HEAP_MAX_FRAMES)))
            let frames = withUnsafeBytes(of: &sample.frames) { Array($0.bindMemory(to: UInt64.self).prefix(depth)) }
            counts[Key(frames: frames, size: sample.size), default: 0] += 1
        }
        return HeapProfile(sampleInterval: interval, takenWallNanos: taken,
                           stacks: counts.map { HeapProfile.Stack(frames: $0.key.frames, size: $0.key.size, count: $0.value) },
                           dropped: status.dropped)
    }
}
