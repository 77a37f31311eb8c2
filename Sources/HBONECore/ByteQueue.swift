/// A FIFO of bytes: append at the back, consume from the front. Compacts lazily so appends and
/// consumes are amortised O(n) in bytes moved, and a drained queue releases its storage when asked.
public struct ByteQueue: Sendable {
    @usableFromInline var storage: [UInt8] = []
    @usableFromInline var head = 0

    public init() {}

    @inlinable public var count: Int { storage.count - head }
    @inlinable public var isEmpty: Bool { head == storage.count }
    /// Bytes of storage held (for memory accounting and tests).
    public var capacity: Int { storage.capacity }

    @inlinable public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        compactIfUseful(adding: bytes.count)
        storage.append(contentsOf: bytes)
    }

    @inlinable public mutating func append(_ bytes: some Collection<UInt8>) {
        compactIfUseful(adding: bytes.count)
        storage.append(contentsOf: bytes)
    }

    /// Calls `body` with the readable bytes; it returns how many it consumed.
    @inlinable public mutating func consume(_ body: (UnsafeRawBufferPointer) throws -> Int) rethrows -> Int {
        guard !isEmpty else { return 0 }
        let used = try storage.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[head...]))
        }
        precondition(used >= 0 && used <= count, "consumed more than queued")
        discard(used)
        return used
    }

    @inlinable public mutating func discard(_ n: Int) {
        head += n
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        }
    }

    /// Removes and returns up to `max` bytes from the front.
    public mutating func read(max: Int) -> [UInt8] {
        let n = Swift.min(max, count)
        let out = Array(storage[head..<head + n])
        discard(n)
        return out
    }

    public var bytes: ArraySlice<UInt8> { storage[head...] }

    /// Drops storage of an empty queue (idle connections should cost little memory).
    public mutating func releaseIfEmpty() {
        if isEmpty && storage.capacity > 0 { storage = [] ; head = 0 }
    }

    @inlinable mutating func compactIfUseful(adding n: Int) {
        // Move the live bytes down only when the dead prefix is large and at least half the array,
        // so each byte is moved a bounded number of times.
        if head > 0 && head >= 4096 && head * 2 >= storage.count {
            storage.removeSubrange(0..<head)
            head = 0
        }
    }
}
