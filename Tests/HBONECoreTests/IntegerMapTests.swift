import Testing
import HBONETestSupport
@testable import HBONECore

/// The table holds exactly what a `Dictionary` given the same operations holds, however its keys
/// collide, and gives memory back as it empties.
@Suite struct IntegerMapTests {
    /// Random inserts, updates, removals and lookups, checked against a Dictionary after every one.
    /// Multiplier 1 sends every small key to the first slot, and keys just under 2^64 to the last
    /// ones, so clusters are long and wrap around the end: the cases backward-shift removal can get
    /// wrong.
    @Test(arguments: [
        (multiplier: integerMapMultiplier, keys: "small"),
        (multiplier: 1, keys: "small"),
        (multiplier: 1, keys: "top"),
        (multiplier: 0x9E37_79B9_7F4A_7C15, keys: "wide"),
    ] as [(multiplier: UInt64, keys: String)])
    func holdsWhatADictionaryHolds(_ c: (multiplier: UInt64, keys: String)) {
        var rng = SplitMix(seed: c.multiplier ^ UInt64(c.keys.utf8.count))
        var map = IntegerMap<UInt64, Int>(multiplier: c.multiplier)
        var oracle: [UInt64: Int] = [:]
        func key() -> UInt64 {
            switch c.keys {
            case "small": return rng.next() % 300
            case "top": return UInt64.max - rng.next() % 300
            default: return rng.next() % 4 == 0 ? rng.next() % 300 : rng.next()
            }
        }
        for step in 0..<30_000 {
            // Phases that mostly add, then mostly remove, so the table grows and shrinks.
            let adding = (step / 3_000) % 2 == 0
            let k = key()
            switch rng.next() % 10 {
            case 0..<5 where adding, 0..<2:
                let v = Int(rng.next() % 1_000_000)
                #expect(map.updateValue(v, forKey: k) == oracle.updateValue(v, forKey: k))
            case 5..<8:
                #expect(map.removeValue(forKey: k) == oracle.removeValue(forKey: k))
            case 8:
                // Removing something that is there, so removals hit filled clusters.
                if let some = oracle.keys.first { #expect(map.removeValue(forKey: some) == oracle.removeValue(forKey: some)) }
            default:
                #expect(map[k] == oracle[k])
            }
            #expect(map.count == oracle.count)
            #expect(map.capacity == 0 || map.count * 2 <= map.capacity)
            if step % 97 == 0 { map.shrinkIfSparse() }
            if step % 500 == 0 {
                for (k, v) in oracle { #expect(map[k] == v) }
                var seen: [UInt64: Int] = [:]
                for (k, v) in map { #expect(seen.updateValue(v, forKey: k) == nil) }
                #expect(seen == oracle)
            }
        }
    }

    @Test func setThroughTheSubscript() {
        var map = IntegerMap<Int32, String>()
        map[3] = "three"
        map[5] = "five"
        map[3] = "drei"
        #expect(map[3] == "drei" && map[5] == "five" && map[7] == nil)
        map[3] = nil
        #expect(map[3] == nil && map.count == 1 && map.contains(5) && !map.contains(3))
        #expect(Array(map.values) == ["five"])
    }

    @Test func memoryGoesBackAsItEmpties() {
        var map = IntegerMap<UInt64, Int>()
        #expect(map.capacity == 0)
        for i in 0..<50_000 { map[UInt64(i)] = i }
        #expect(map.capacity >= 100_000)
        for i in 0..<49_990 { map[UInt64(i)] = nil }
        #expect(map.capacity >= 100_000)   // until the owner's sweep
        map.shrinkIfSparse()
        #expect(map.capacity <= 64)
        map.shrinkIfSparse()
        #expect(map.capacity <= 64)
        for i in 49_990..<50_000 { #expect(map[UInt64(i)] == i) }
        map.removeAll()
        #expect(map.capacity == 0 && map.isEmpty)
    }

    /// A connection opening and closing one stream at a time keeps its smallest table rather than
    /// allocating one per stream.
    @Test func oneAtATimeKeepsTheSmallestTable() {
        var map = IntegerMap<Int32, Int>()
        for id in stride(from: Int32(1), to: 2_001, by: 2) {
            map[id] = Int(id)
            #expect(map.capacity == 8)
            map[id] = nil
            map.shrinkIfSparse()
            #expect(map.capacity == 8 && map.isEmpty)
        }
    }
}
