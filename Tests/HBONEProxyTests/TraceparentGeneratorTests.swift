import Testing
@testable import HBONEProxy

@Suite struct TraceparentGeneratorTests {
    static func valid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        let hex = { (s: Substring) in s.allSatisfy { "0123456789abcdef".contains($0) } }
        return parts.count == 4 && parts[0] == "00" && parts[3] == "01"
            && parts[1].count == 32 && hex(parts[1]) && parts[1] != Substring(String(repeating: "0", count: 32))
            && parts[2].count == 16 && hex(parts[2]) && parts[2] != Substring(String(repeating: "0", count: 16))
    }

    @Test func valuesAreW3CTraceparentsAndDoNotRepeat() {
        var g = TraceparentGenerator()
        var seen = Set<String>()
        var invalid: [String] = []   // one expectation over all: 10,000 `#expect`s are slow under a sanitizer
        for _ in 0..<10_000 {
            let v = g.next()
            if !Self.valid(v) { invalid.append(v) }
            seen.insert(v)
        }
        #expect(invalid.isEmpty, "\(invalid.count) invalid, first: \(invalid.prefix(5))")
        #expect(seen.count == 10_000)
    }

    /// Each loop seeds its own generator from the system: two loops do not produce the same IDs.
    @Test func generatorsAreSeededApart() {
        var a = TraceparentGenerator(), b = TraceparentGenerator()
        #expect(a.next() != b.next())
        var fixed = TraceparentGenerator(seed: (1, 2, 3, 4)), again = TraceparentGenerator(seed: (1, 2, 3, 4))
        #expect(fixed.next() == again.next())
        var zero = TraceparentGenerator(seed: (0, 0, 0, 0))
        #expect(Self.valid(zero.next()))
    }
}
