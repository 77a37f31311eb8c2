/// A hash table keyed by integers, for the tables a tunnel touches a dozen times: HTTP/2 streams,
/// stream owners, timers, a loop's tunnels. `Dictionary` hashes an integer key with SipHash, about
/// 100 instructions a lookup and a fifth of a tunnel's hashing (scripts/bench-tunnel-cost.sh);
/// here a key is placed by one multiplication (multiply-shift with an odd multiplier drawn at
/// random per process, so a peer that picks stream IDs cannot aim them at one slot), probed
/// linearly, and removal shifts the entries behind it back (no tombstones to pile up).
///
/// The table stays at most half full. Its owner's periodic sweep shrinks it when it is below an
/// eighth (`shrinkIfSparse`), so a burst's memory goes back; it keeps its smallest size once it
/// has one, so a connection that opens and closes a stream at a time allocates nothing per stream.
public struct IntegerMap<Key: FixedWidthInteger, Value> {
    @usableFromInline struct Slot {
        @usableFromInline var key: Key
        @usableFromInline var value: Value?
        @inlinable init(key: Key, value: Value?) { self.key = key; self.value = value }
    }

    @usableFromInline var slots: [Slot] = []
    /// 64 − log2(capacity): the top bits of the product pick the slot.
    @usableFromInline var shift: UInt64 = 64
    @usableFromInline let multiplier: UInt64
    @usableFromInline var entries = 0

    /// The size a table starts at, and below which it never shrinks.
    @usableFromInline static var minimumCapacity: Int { 8 }

    @inlinable public init() { multiplier = integerMapMultiplier }

    /// Tests: a chosen multiplier (1 puts every small key in the first slot).
    init(multiplier: UInt64) {
        assert(multiplier & 1 == 1)
        self.multiplier = multiplier
    }

    @inlinable public var count: Int { entries }
    @inlinable public var isEmpty: Bool { entries == 0 }
    /// Slots allocated (memory accounting and tests).
    @inlinable public var capacity: Int { slots.count }

    @inlinable @inline(__always)
    func home(_ key: Key) -> Int {
        Int(truncatingIfNeeded: (UInt64(truncatingIfNeeded: key) &* multiplier) &>> shift)
    }

    /// The slot holding `key`, or nil.
    @inlinable
    func find(_ key: Key) -> Int? {
        guard count > 0 else { return nil }
        let mask = slots.count - 1
        var i = home(key)
        while slots[i].value != nil {
            if slots[i].key == key { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    @inlinable
    public subscript(key: Key) -> Value? {
        get {
            guard let i = find(key) else { return nil }
            return slots[i].value
        }
        set {
            if let newValue { updateValue(newValue, forKey: key) } else { removeValue(forKey: key) }
        }
    }

    @inlinable
    public func contains(_ key: Key) -> Bool { find(key) != nil }

    /// Sets `key`'s value; returns the one it replaced.
    @inlinable @discardableResult
    public mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        if let i = find(key) {
            let old = slots[i].value
            slots[i].value = value
            return old
        }
        if (count + 1) * 2 > slots.count { resize(to: Swift.max(Self.minimumCapacity, slots.count * 2)) }
        let mask = slots.count - 1
        var i = home(key)
        while slots[i].value != nil { i = (i + 1) & mask }
        slots[i] = Slot(key: key, value: value)
        entries += 1
        return nil
    }

    @inlinable @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        guard let found = find(key) else { return nil }
        let mask = slots.count - 1
        let old = slots[found].value
        slots[found].value = nil
        entries -= 1
        // Backward shift: an entry after the hole moves into it if the hole lies between its home
        // and where it sits, so every entry stays reachable from its home without tombstones.
        var hole = found
        var j = (found + 1) & mask
        while slots[j].value != nil {
            let h = home(slots[j].key)
            if (j &- h) & mask >= (j &- hole) & mask {
                slots.swapAt(hole, j)
                hole = j
            }
            j = (j + 1) & mask
        }
        return old
    }

    /// Gives memory back when the table is less than an eighth full; for a sweep now and then.
    /// Removal does not shrink it by itself: with 16 tunnels in flight the counts swing across
    /// any threshold, and resizing there cost more allocations than the table saves.
    @inlinable
    public mutating func shrinkIfSparse() {
        guard count * 8 < slots.count && slots.count > Self.minimumCapacity else { return }
        var target = Self.minimumCapacity
        while target < count * 4 { target *= 2 }
        resize(to: target)
    }

    /// Empties the table and gives its memory back.
    @inlinable
    public mutating func removeAll() {
        slots = []
        shift = 64
        entries = 0
    }

    @inlinable
    mutating func resize(to newCapacity: Int) {
        assert(newCapacity.nonzeroBitCount == 1 && newCapacity >= count * 2)
        let old = slots
        slots = Array(repeating: Slot(key: 0, value: nil), count: newCapacity)
        shift = UInt64(64 - newCapacity.trailingZeroBitCount)
        let mask = newCapacity - 1
        for slot in old where slot.value != nil {
            var i = home(slot.key)
            while slots[i].value != nil { i = (i + 1) & mask }
            slots[i] = slot
        }
    }
}

extension IntegerMap: Sequence {
    public struct Iterator: IteratorProtocol {
        @usableFromInline let slots: [Slot]
        @usableFromInline var position = 0
        @inlinable init(slots: [Slot]) { self.slots = slots }

        @inlinable
        public mutating func next() -> (key: Key, value: Value)? {
            while position < slots.count {
                defer { position += 1 }
                if let value = slots[position].value { return (slots[position].key, value) }
            }
            return nil
        }
    }

    @inlinable public func makeIterator() -> Iterator { Iterator(slots: slots) }
    @inlinable public var underestimatedCount: Int { count }

    /// The values, in no particular order.
    @inlinable public var values: LazyMapSequence<IntegerMap, Value> { lazy.map(\.value) }
}

/// Odd, so multiplication permutes the keys; drawn once per process.
@usableFromInline let integerMapMultiplier: UInt64 = UInt64.random(in: .min ... .max) | 1
