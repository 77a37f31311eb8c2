import Dispatch
import Foundation
import Testing
import HBONECore
@testable import HBONEApp

/// Control-plane updates are applied off its thread: one run at a time, the asks made during a
/// run served by one more run that sees the latest state, and none lost.
@Suite struct CoalescingRunnerTests {
    @Test func asksDuringARunAreServedByOneMoreRunThatSeesTheLatest() {
        let queue = DispatchQueue(label: "test.coalescing")
        let started = DispatchSemaphore(value: 0), gate = DispatchSemaphore(value: 0)
        let latest = Locked(0), seen = Locked<[Int]>([])
        let runner = CoalescingRunner(queue: queue) {
            let value = latest.withLock { $0 }
            let first = seen.withLock { s in s.append(value); return s.count == 1 }
            if first {
                started.signal()
                gate.wait()
            }
        }
        latest.withLock { $0 = 1 }
        runner.request()
        started.wait()
        for v in 2...100 {
            latest.withLock { $0 = v }
            runner.request()
        }
        gate.signal()
        queue.sync {}
        #expect(seen.withLock { $0 } == [1, 100], "99 asks during the first run: one more run, with the last value")
        queue.sync {}
        runner.request()
        queue.sync {}
        #expect(seen.withLock { $0 } == [1, 100, 100])
    }

    /// Asks from many threads at once: the last run starts after the last ask, so the last state
    /// is always applied.
    @Test func noAskIsLeftWithoutARunAfterIt() {
        let queue = DispatchQueue(label: "test.coalescing.many")
        let asked = Locked(0), seenAtLastRun = Locked(0), runs = Locked(0)
        let runner = CoalescingRunner(queue: queue) {
            let value = asked.withLock { $0 }
            seenAtLastRun.withLock { $0 = value }
            runs.withLock { $0 += 1 }
            usleep(200)
        }
        DispatchQueue.concurrentPerform(iterations: 2000) { _ in
            asked.withLock { $0 += 1 }
            runner.request()
        }
        queue.sync {}
        #expect(seenAtLastRun.withLock { $0 } == 2000)
        #expect(runs.withLock { $0 } < 2000, "asks made while one was queued joined it")
    }
}
