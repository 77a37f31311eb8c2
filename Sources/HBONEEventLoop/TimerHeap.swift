/// Deadlines in a binary min-heap; cancelled timers are dropped lazily when they reach the top.
struct TimerHeap {
    private var heap: [(deadline: UInt64, id: UInt64)] = []
    private var bodies: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1

    var nextDeadline: UInt64? {
        mutating get {
            dropCancelled()
            return heap.first?.deadline
        }
    }

    mutating func insert(deadline: UInt64, _ body: @escaping () -> Void) -> UInt64 {
        let id = nextID
        nextID += 1
        bodies[id] = body
        heap.append((deadline, id))
        siftUp(heap.count - 1)
        return id
    }

    mutating func cancel(_ id: UInt64) { bodies[id] = nil }

    mutating func popExpired(now: UInt64) -> (() -> Void)? {
        dropCancelled()
        guard let top = heap.first, top.deadline <= now else { return nil }
        removeTop()
        return bodies.removeValue(forKey: top.id)
    }

    private mutating func dropCancelled() {
        while let top = heap.first, bodies[top.id] == nil { removeTop() }
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
