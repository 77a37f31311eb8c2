#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, for the few places threads meet (posts into a loop, snapshot
/// swaps, metric series, the log's settings). Chosen over `Synchronization.Mutex` because
/// ThreadSanitizer intercepts pthread mutexes but cannot see the futex wait of a contended
/// `Mutex`, and reported false races on it; with this lock, `scripts/test.sh --sanitize thread`
/// reports only real ones. Uncontended cost is the same order (tens of nanoseconds).
public final class Locked<Value>: @unchecked Sendable {
    // Heap-allocated: a pthread mutex must not move. Visible to inlined code only, so `withLock`
    // is specialized in the calling module instead of running as unspecialized generic code.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    @inlinable
    public func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
