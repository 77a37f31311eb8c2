import Testing
@testable import HBONECore

/// The table finds exactly the blocks a test of every block would, in the same order.
@Suite struct CIDRTableTests {
    /// SplitMix64: the same blocks and addresses on every run.
    struct Seeded {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    @Test func findsWhatAScanFinds() {
        var rng = Seeded(state: 42)
        // Few distinct prefixes over a small address space, so blocks nest and addresses hit them.
        func v4() -> IPAddress { .v4(UInt32(10 << 24) | UInt32(rng.below(4)) << 16 | UInt32(rng.below(4)) << 8 | UInt32(rng.below(4))) }
        func v6() -> IPAddress { IPAddress(v6: 0xfd00_0000_0000_0000 | UInt64(rng.below(4)) << 32, UInt64(rng.below(4))) }
        var blocks: [(cidr: CIDR, value: Int)] = []
        for i in 0..<300 {
            let cidr: CIDR?
            switch rng.below(5) {
            case 0, 1: cidr = CIDR(v4(), prefixLength: [8, 16, 22, 24, 30, 32][rng.below(6)], spelledV6: false)
            case 2, 3: cidr = CIDR(v6(), prefixLength: [8, 32, 64, 96, 120, 128][rng.below(6)], spelledV6: true)
            default: cidr = CIDR(v4(), prefixLength: [0, 80, 96, 104, 120][rng.below(5)], spelledV6: true)   // mapped and wider
            }
            blocks.append((cidr!, i))
        }
        blocks.append((CIDR("::/0")!, 300))
        blocks.append((CIDR("0.0.0.0/0")!, 301))
        let table = CIDRTable(blocks)
        for _ in 0..<5000 {
            let ip = rng.below(2) == 0 ? v4() : v6()
            let scanned = blocks.filter { $0.cidr.contains(ip) }.map(\.value)
            #expect(table.matches(ip).map(\.value) == scanned, "\(ip)")
        }
        #expect(!table.isEmpty && CIDRTable<Int>([]).isEmpty && CIDRTable<Int>([]).matches(IPAddress("10.0.0.1")!).isEmpty)
    }
}
