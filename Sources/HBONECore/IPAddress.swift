#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as a value. Parsing is strict (inet_pton rules: no leading zeros,
/// no zone ids) because addresses arrive from the network and from config files.
///
/// Every way in (`init(_:)`, `init(in6:)`, `init(v6:_:)`) yields the one normal form: an IPv4
/// address written as IPv6 (`::ffff:a.b.c.d`, mapped; `::a.b.c.d`, the deprecated compatible form)
/// is `.v4`. Decisions (routing, the self-call guard, policy) compare these values, so two
/// spellings of one address can never get two answers. Build `.v6` only through those inits.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    case v4(UInt32)                           // host byte order
    case v6(UInt64, UInt64)                   // high, low; host byte order

    /// The normal form of a 128-bit address: mapped and compatible IPv4 become `.v4`;
    /// `::` and `::1` stay IPv6 (unspecified and loopback, not IPv4 0.0.0.0 and 0.0.0.1).
    public init(v6 hi: UInt64, _ lo: UInt64) {
        if hi == 0 && (lo >> 32 == 0xffff || (lo >> 32 == 0 && lo > 1)) {
            self = .v4(UInt32(truncatingIfNeeded: lo))
        } else {
            self = .v6(hi, lo)
        }
    }

    /// This address as IPv6: IPv4 becomes `::ffff:a.b.c.d` (for matching against IPv6 blocks).
    public var mappedV6: (UInt64, UInt64) {
        switch self {
        case let .v4(v): return (0, 0xffff_0000_0000 | UInt64(v))
        case let .v6(hi, lo): return (hi, lo)
        }
    }

    // Generic entry points are inlinable so callers in other modules get them specialized: an
    // unspecialized generic goes through witness tables for every byte (1-2 % of a proxy's CPU
    // per new connection, for a 20-byte address).
    @inlinable public init?(_ text: some StringProtocol) { self.init(text: Substring(text)) }

    @usableFromInline init?(text: Substring) {
        var s = text
        guard let ip = s.withUTF8({ IPAddress(bytes: $0[...]) }) else { return nil }
        self = ip
    }

    init?(bytes: Slice<UnsafeBufferPointer<UInt8>>) {
        if bytes.isEmpty || bytes.count > 45 { return nil }
        if !bytes.contains(UInt8(ascii: ":")) {
            guard let v = IPAddress.dottedQuad(bytes) else { return nil }
            self = .v4(v)
            return
        }
        // inet_pton reads a C string: a NUL would end it early and the rest would go unchecked.
        guard !bytes.contains(0) else { return nil }
        var raw = in6_addr()
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes), as: UTF8.self)
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        self = IPAddress(in6: raw)
    }

    /// IPv4 dotted decimal by inet_pton's rules (exactly four decimal octets 0-255, no leading
    /// zeros, nothing else), read from the bytes: addresses are parsed for every inbound tunnel
    /// (`:authority`, `forwarded`) and inet_pton wants a C string.
    static func dottedQuad(_ bytes: some Sequence<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var dots = 0
        for b in bytes {
            if b == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                octet = 0
                digits = 0
                dots += 1
            } else if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                if digits > 0 && octet == 0 { return nil }    // a leading zero
                octet = octet * 10 + UInt32(b - UInt8(ascii: "0"))
                digits += 1
                guard octet <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | octet
    }

    public init(in6 raw: in6_addr) {
        self = withUnsafeBytes(of: raw) { IPAddress(networkBytes: $0)! }
    }

    /// An address in network byte order as it travels on the wire (SOCKS5, xDS): 4 bytes are IPv4,
    /// 16 are IPv6 in the normal form; any other length is nil.
    @inlinable public init?(networkBytes bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16:
            let hi = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = IPAddress(v6: hi, lo)
        default:
            return nil
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    public var in6: in6_addr {
        var raw = in6_addr()
        guard case let .v6(hi, lo) = self else { return raw }
        withUnsafeMutableBytes(of: &raw) { bytes in
            for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i))) }
            for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i))) }
        }
        return raw
    }

    public var description: String {
        switch self {
        case let .v4(v):
            // Written digit by digit: at most 15 bytes, so a small string with no allocation (the
            // proxy writes one or two per tunnel: `:authority`, `forwarded`).
            return String(unsafeUninitializedCapacity: 15) { IPAddress.writeDottedQuad(v, into: $0) }
        case .v6:
            var raw = in6
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Writes `v` as a.b.c.d at the start of `out` (room for 15 bytes); returns how many it wrote.
    static func writeDottedQuad(_ v: UInt32, into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var n = 0
        for shift in [24, 16, 8, 0] as [UInt32] {
            if shift != 24 { out[n] = UInt8(ascii: "."); n += 1 }
            n += writeDecimal(v >> shift & 0xff, into: out, at: n)
        }
        return n
    }

    /// Writes `value` (0-65535) in decimal at `offset`; returns how many bytes it wrote.
    static func writeDecimal(_ value: UInt32, into out: UnsafeMutableBufferPointer<UInt8>, at offset: Int) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        var v = value
        for i in stride(from: digits - 1, through: 0, by: -1) {
            out[offset + i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
        return digits
    }

    public var isLoopback: Bool {
        switch self {
        case let .v4(v): return v >> 24 == 127
        case let .v6(hi, lo): return hi == 0 && lo == 1
        }
    }

    public var isUnspecified: Bool {
        switch self {
        case let .v4(v): return v == 0
        case let .v6(hi, lo): return hi == 0 && lo == 0
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case let (.v4(x), .v4(y)): return x < y
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        case let (.v6(h1, l1), .v6(h2, l2)): return (h1, l1) < (h2, l2)
        }
    }
}
