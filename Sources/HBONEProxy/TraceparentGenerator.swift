/// W3C `traceparent` values for outbound CONNECTs, as the reference client sends them.
///
/// Trace and span IDs must be unique, not secret, so they come from a per-loop xoshiro256**
/// generator seeded once from the system's random source. Drawing each of the 24 bytes from
/// `SystemRandomNumberGenerator` cost 24 `getrandom` syscalls and 24 small strings per tunnel.
struct TraceparentGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        s = (system.next(), system.next(), system.next(), system.next())
        // xoshiro must not start from all zeros.
        if s == (0, 0, 0, 0) { s.0 = 0x9E37_79B9_7F4A_7C15 }
    }

    init(seed: (UInt64, UInt64, UInt64, UInt64)) {
        s = seed == (0, 0, 0, 0) ? (0x9E37_79B9_7F4A_7C15, 0, 0, 0) : seed
    }

    mutating func nextWord() -> UInt64 {
        let result = rotate(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotate(s.3, 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// `00-<32 hex trace id>-<16 hex span id>-01`; IDs of all zeros are invalid and never made.
    mutating func next() -> String {
        var trace = (nextWord(), nextWord())
        if trace == (0, 0) { trace.1 = 1 }
        var span = nextWord()
        if span == 0 { span = 1 }
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: 55) { out in
            digits.withUTF8Buffer { hex in
                var i = 0
                func put(_ byte: UInt8) { out[i] = byte; i += 1 }
                func word(_ w: UInt64) { for shift in stride(from: 60, through: 0, by: -4) { put(hex[Int((w >> UInt64(shift)) & 0xF)]) } }
                put(UInt8(ascii: "0")); put(UInt8(ascii: "0")); put(UInt8(ascii: "-"))
                word(trace.0); word(trace.1)
                put(UInt8(ascii: "-"))
                word(span)
                put(UInt8(ascii: "-")); put(UInt8(ascii: "0")); put(UInt8(ascii: "1"))
            }
            return 55
        }
    }
}
