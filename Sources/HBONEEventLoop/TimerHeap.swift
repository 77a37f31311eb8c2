import HBONECore

/// Deadlines in a binary min-heap; cancelled timers are dropped lazily when they reach the top, or
/// all at once when they are most of the heap. Nearly every timer is cancelled long before it is
/// due (a tunnel's 10 s connect timer lives a few hundred µs), so under load waiting for the top
/// kept ~10 s of cancelled entries per loop: tens of thousands, each costing a sift through a heap
/// far larger than a cache when it finally surfaced, and an array that never shrank again.
struct TimerHeap {
    private var heap: [(deadline: UInt64, id: UInt64)] = []
    /// A closure stored as a table's generic value is re-wrapped in a thunk (an allocation per
    /// timer); held in a concrete struct it is stored as it is.
    private struct Body { let run: () -> Void }
    /// Shrunk by `shrinkIfSparse` (at compaction and the loop's sweep), as the heap array is.
    private var bodies = IntegerMap<UInt64, Body>()
    private var nextID: UInt64 = 1
    /// Entries in `heap` whose timer was cancelled.
    private var cancelledEntries = 0
    /// Below this many cancelled entries the heap is not compacted (a rebuild per few cancels would cost more than it saves).
    static let compactionFloor = 256

    /// Entries the heap holds, cancelled ones included (tests).
    var entryCount: Int { heap.count }
    /// The heap array's capacity in entries (tests).
    var entryCapacity: Int { heap.capacity }
    /// The timer table's capacity in timers (tests).
    var bodyCapacity: Int { bodies.capacity }

    var nextDeadline: UInt64? {
        mutating get {
            dropCancelled()
            return heap.first?.deadline
        }
    }

    mutating func insert(deadline: UInt64, _ body: @escaping () -> Void) -> UInt64 {
        let id = nextID
        nextID += 1
        bodies[id] = Body(run: body)
        heap.append((deadline, id))
        siftUp(heap.count - 1)
        return id
    }

    mutating func cancel(_ id: UInt64) {
        guard bodies.removeValue(forKey: id) != nil else { return }
        cancelledEntries += 1
        if cancelledEntries >= Self.compactionFloor && cancelledEntries * 2 > heap.count { compact() }
    }

    mutating func popExpired(now: UInt64) -> (() -> Void)? {
        dropCancelled()
        guard let top = heap.first, top.deadline <= now else { return nil }
        removeTop()
        return bodies.removeValue(forKey: top.id)?.run
    }

    private mutating func dropCancelled() {
        while let top = heap.first, !bodies.contains(top.id) {
            removeTop()
            cancelledEntries -= 1
        }
    }

    /// Drops every cancelled entry and rebuilds the heap: O(n), once per at least n/2 cancels.
    private mutating func compact() {
        heap.removeAll { !bodies.contains($0.id) }
        cancelledEntries = 0
        shrinkIfSparse()
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    /// A burst's memory goes back: an array left mostly empty is copied into one of its size (it
    /// does not shrink by itself), and the table shrinks. From compaction, and from the loop's
    /// sweep (timers that fired rather than being cancelled never compact).
    mutating func shrinkIfSparse() {
        let keep = 4 * max(heap.count, Self.compactionFloor)
        if heap.capacity > keep { heap = heap.withUnsafeBufferPointer { Array($0) } }
        bodies.shrinkIfSparse()
    }

    private mutating func removeTop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].deadline <= heap[i].deadline { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count && heap[l].deadline < heap[smallest].deadline { smallest = l }
            if r < heap.count && heap[r].deadline < heap[smallest].deadline { smallest = r }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}
