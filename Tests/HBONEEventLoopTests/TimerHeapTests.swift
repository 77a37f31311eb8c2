import Testing
import HBONETestSupport
@testable import HBONEEventLoop

@Suite struct TimerHeapTests {
    final class Fired { var ids: [Int] = [] }

    /// The proxy's pattern under load: each tunnel arms a 10 s timer and cancels it within the
    /// millisecond. Cancelled entries must not pile up for the 10 s until they reach the top.
    @Test func cancelledTimersDoNotPileUp() {
        var timers = TimerHeap()
        let fired = Fired()
        var live = 0
        var worstExcess = Int.min
        for i in 0..<100_000 {
            let now = UInt64(i) * 100_000   // 10,000 timers a second
            let id = timers.insert(deadline: now + 10_000_000_000) { fired.ids.append(i) }
            if i % 1000 == 0 { live += 1 } else { timers.cancel(id) }
            worstExcess = max(worstExcess, timers.entryCount - 2 * live)
        }
        #expect(worstExcess <= 2 * TimerHeap.compactionFloor)
        while let body = timers.popExpired(now: .max) { body() }
        #expect(fired.ids == Array(stride(from: 0, to: 100_000, by: 1000)))
    }

    @Test func aBurstGivesItsMemoryBack() {
        var timers = TimerHeap()
        let ids = (0..<50_000).map { timers.insert(deadline: UInt64($0)) {} }
        #expect(timers.entryCapacity >= 50_000)
        #expect(timers.bodyCapacity >= 50_000)
        for id in ids { timers.cancel(id) }
        #expect(timers.entryCount <= TimerHeap.compactionFloor)
        #expect(timers.entryCapacity <= 4 * TimerHeap.compactionFloor)
        #expect(timers.bodyCapacity <= 4 * TimerHeap.compactionFloor)
        #expect(timers.nextDeadline == nil)
    }

    /// Timers that fire never trigger a compaction: the loop's sweep gives their memory back.
    @Test func aBurstThatFiredGivesItsMemoryBackAtTheSweep() {
        var timers = TimerHeap()
        for d in 0..<50_000 { _ = timers.insert(deadline: UInt64(d)) {} }
        while let body = timers.popExpired(now: 49_989) { body() }
        #expect(timers.entryCount == 10)
        #expect(timers.bodyCapacity >= 50_000)
        timers.shrinkIfSparse()
        #expect(timers.entryCapacity <= 4 * TimerHeap.compactionFloor)
        #expect(timers.bodyCapacity <= 64)
        var left = 0
        while let body = timers.popExpired(now: .max) { body(); left += 1 }
        #expect(left == 10)
    }

    @Test func compactionKeepsTheRestInDeadlineOrder() {
        var rng = SplitMix(seed: 7)
        var timers = TimerHeap()
        let fired = Fired()
        let deadlines = (0..<1000).map { _ in rng.next() % 10_000 }
        let ids = deadlines.enumerated().map { k, d in timers.insert(deadline: d) { fired.ids.append(k) } }
        let cancelled = Set((0..<1000).shuffled(using: &rng).prefix(600))
        for k in cancelled { timers.cancel(ids[k]) }
        // Compacted at the 501st cancel (more than half the heap); the 99 after it wait to surface.
        #expect(timers.entryCount == 499)
        while let body = timers.popExpired(now: .max) { body() }
        #expect(Set(fired.ids) == Set(0..<1000).subtracting(cancelled))
        #expect(fired.ids.map { deadlines[$0] } == fired.ids.map { deadlines[$0] }.sorted())
    }

    /// Random inserts, cancels and expiries against a plain list: the same timers fire, in deadline order.
    @Test(arguments: [1, 2, 3, 4] as [UInt64]) func firesLikeASortedList(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var timers = TimerHeap()
        let fired = Fired()
        var model: [(deadline: UInt64, id: UInt64, tag: Int)] = []
        var now: UInt64 = 0
        var mismatches = 0
        for tag in 0..<20_000 {
            switch rng.next() % 10 {
            case 0..<6:
                let deadline = now + rng.next() % 5_000
                let id = timers.insert(deadline: deadline) { fired.ids.append(tag) }
                model.append((deadline, id, tag))
            case 6..<9:
                guard !model.isEmpty else { continue }
                let k = Int(rng.next() % UInt64(model.count))
                timers.cancel(model[k].id)
                model.remove(at: k)
            default:
                now += rng.next() % 500
                fired.ids.removeAll()
                while let body = timers.popExpired(now: now) { body() }
                let due = model.filter { $0.deadline <= now }
                model.removeAll { $0.deadline <= now }
                // The same timers, in deadline order (equal deadlines in any order).
                let deadlineOf = Dictionary(uniqueKeysWithValues: due.map { ($0.tag, $0.deadline) })
                let deadlines = fired.ids.map { deadlineOf[$0] ?? .max }
                if fired.ids.sorted() != due.map(\.tag).sorted() || deadlines != deadlines.sorted()
                    || timers.nextDeadline != model.map(\.deadline).min() { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }
}
