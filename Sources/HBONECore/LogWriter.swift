import Atomics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Lines to stderr from a thread of their own, so a stalled reader of stderr (a full pipe, a
/// paused log shipper) never blocks an event loop: callers queue a line and return; past
/// `capacity` queued bytes a line is dropped and counted (`dropped`), never waited for.
public final class LogWriter: @unchecked Sendable {
    // `queue`, `queuedBytes` and `closed` are guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var writing = false
    private let fd: Int32
    public let capacity: Int
    public let dropped = ManagedAtomic<UInt64>(0)

    public init(fd: Int32 = 2, capacity: Int = 4 << 20) {
        self.fd = fd
        self.capacity = capacity
        let thread = Thread { [self] in run() }
        thread.name = "hbone-log"
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// Queues `line`; false when it was dropped (the queue is full).
    @discardableResult
    public func enqueue(_ line: [UInt8]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard queuedBytes + line.count <= capacity else {
            dropped.wrappingIncrement(ordering: .relaxed)
            return false
        }
        queue.append(line)
        queuedBytes += line.count
        condition.signal()
        return true
    }

    /// Waits until everything queued so far is written, or `timeout` passes (shutdown).
    public func flush(timeout: TimeInterval = 2) {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while (!queue.isEmpty || writing) && condition.wait(until: deadline) {}
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue = []
            queuedBytes = 0
            writing = true
            condition.unlock()
            for line in batch {
                var offset = 0
                while offset < line.count {
                    let n = line.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }   // stderr closed: the line is lost, the proxy is not
                    offset += n
                }
            }
            condition.lock()
            writing = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
