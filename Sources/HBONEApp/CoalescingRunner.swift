import Dispatch
import HBONECore

/// Runs `body` on `queue` when asked: never twice at once, and once more for all the asks that
/// came while it ran. The control plane's updates use it so a burst of xDS pushes rebuilds the
/// snapshot once for the latest state (a rebuild reads whatever the sources hold when it starts),
/// and the control plane's thread goes back to its streams (ACKs, pings, the CA) at once instead
/// of rebuilding a large mesh's tables once per push.
final class CoalescingRunner: Sendable {
    private let queue: DispatchQueue
    private let body: @Sendable () -> Void
    /// An ask is queued and has not started: later asks join it.
    private let pending = Locked(false)

    init(queue: DispatchQueue, _ body: @escaping @Sendable () -> Void) {
        self.queue = queue
        self.body = body
    }

    func request() {
        guard pending.withLock({ p in defer { p = true }; return !p }) else { return }
        queue.async { [self] in
            // Cleared before the run: an ask that comes during it is served by one more run.
            pending.withLock { $0 = false }
            body()
        }
    }
}
