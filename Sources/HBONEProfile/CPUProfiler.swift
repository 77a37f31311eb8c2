import CHBONEPosix
import Glibc
import HBONECore

/// One CPU profile being taken: SIGPROF sampling of every thread of the process (see
/// `chbone_profiler_start`), drained into stack counts by the thread that owns this object.
/// One profile at a time per process; `stop()` ends it and hands the result over.
public final class CPUProfiler {
    public enum StartError: Error, Equatable, CustomStringConvertible {
        /// Another profile is being taken.
        case busy
        case failed(String)

        public var description: String {
            switch self {
            case .busy: return "a CPU profile is already being taken"
            case let .failed(why): return "the CPU profiler could not start: \(why)"
            }
        }
    }

    public let frequency: Int
    private let startedWallNanos: Int64
    private let startedNanos: UInt64
    private var counts: [CPUProfile.StackKey: Int64] = [:]
    private var threadNames: [Int32: String] = [:]
    private let buffer: UnsafeMutableBufferPointer<chbone_profile_sample>
    private var stopped = false

    private init(frequency: Int) {
        self.frequency = frequency
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        startedWallNanos = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        startedNanos = chbone_monotonic_ns()
        buffer = .allocate(capacity: 256)
    }

    deinit {
        if !stopped { chbone_profiler_stop() }
        buffer.deallocate()
    }

    /// Starts sampling at `frequency` per second of process CPU time (1 to 1000).
    public static func start(frequency: Int) throws(StartError) -> CPUProfiler {
        guard (1...1000).contains(frequency) else { throw .failed("frequency \(frequency) is outside 1-1000") }
        if chbone_profiler_start(Int32(frequency)) != 0 {
            let e = errno
            throw e == EBUSY ? .busy : .failed(String(cString: strerror(e)))
        }
        return CPUProfiler(frequency: frequency)
    }

    /// Moves the samples recorded so far out of the signal handlers' ring, which holds 2048: call it
    /// often enough (every 50 ms holds 40,000 samples a second) or samples are dropped and counted.
    public func drain() {
        guard !stopped else { return }
        while true {
            let n = Int(chbone_profiler_drain(buffer.baseAddress, Int32(buffer.count)))
            for i in 0..<n { add(buffer[i]) }
            if n < buffer.count { return }
        }
    }

    /// Ends the profile and returns it.
    public func stop() -> CPUProfile {
        drain()
        let dropped = chbone_profiler_dropped()
        chbone_profiler_stop()
        stopped = true
        return CPUProfile(frequency: frequency, startedWallNanos: startedWallNanos,
                          durationNanos: Int64(chbone_monotonic_ns() &- startedNanos),
                          stacks: counts.map { ($0.key.frames, $0.key.thread, $0.value) }, dropped: dropped)
    }

    private func add(_ sample: chbone_profile_sample) {
        let depth = Int(min(max(sample.depth, 0), Int32(CHBONE_PROFILE_MAX_FRAMES)))
        guard depth > 0 else { return }
        let frames = withUnsafeBytes(of: sample.frames) { Array($0.bindMemory(to: UInt64.self).prefix(depth)) }
        counts[CPUProfile.StackKey(frames: frames, thread: threadName(sample.tid)), default: 0] += 1
    }

    /// The thread's name now (`Socket.setThreadName`: hbone-worker-N, hbone-admin, …), read once
    /// per thread while it still exists.
    private func threadName(_ tid: Int32) -> String {
        if let name = threadNames[tid] { return name }
        var name = "thread-\(tid)"
        if let comm = try? String(contentsOfProcFile: "/proc/self/task/\(tid)/comm") {
            let text = comm.hasSuffix("\n") ? String(comm.dropLast()) : comm
            if !text.isEmpty { name = text }
        }
        threadNames[tid] = name
        return name
    }
}
