/// An address block such as `10.0.0.0/8` or `fd00::/8`. A bare address is a /32 or /128.
/// Addresses are in their normal form (IPv4 written as IPv6 is IPv4), and so are blocks:
/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`. An IPv6 block wider than the mapped range (say `::/0`)
/// contains an IPv4 address when it contains its mapped form, so no spelling escapes a block.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?(_ text: some StringProtocol) {
        let s = String(text)
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let ip = IPAddress(parts[0]) else { return nil }
        let spelledV6 = parts[0].utf8.contains(UInt8(ascii: ":"))
        var length = spelledV6 ? 128 : 32
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3, parts[1].allSatisfy(\.isASCII), let value = Int(parts[1]) else { return nil }
            length = value
        }
        self.init(ip, prefixLength: length, spelledV6: spelledV6)
    }

    /// `ip` (in normal form) with `prefixLength` bits, counted as in the address as it was written:
    /// `spelledV6` for 16 bytes (an IPv4-mapped address then takes an IPv6 length, 96 + n).
    public init?(_ ip: IPAddress, prefixLength length: Int, spelledV6: Bool) {
        guard length >= 0, length <= (spelledV6 ? 128 : 32) else { return nil }
        if spelledV6 && ip.isIPv4 {
            if length >= 96 {
                // An IPv4 block spelled as mapped IPv6.
                self.prefixLength = length - 96
                self.network = CIDR.mask(ip, length - 96)
            } else {
                let (hi, lo) = ip.mappedV6
                self.prefixLength = length
                self.network = CIDR.mask(.v6(hi, lo), length)
            }
            return
        }
        self.prefixLength = length
        self.network = CIDR.mask(ip, length)
    }

    public func contains(_ ip: IPAddress) -> Bool {
        switch (ip, network) {
        case (.v4, .v4), (.v6, .v6):
            return CIDR.mask(ip, prefixLength) == network
        case (.v4, .v6):
            let (hi, lo) = ip.mappedV6
            return CIDR.mask(.v6(hi, lo), prefixLength) == network
        case (.v6, .v4):
            return false
        }
    }

    public var description: String { "\(network)/\(prefixLength)" }

    static func mask(_ ip: IPAddress, _ length: Int) -> IPAddress {
        switch ip {
        case let .v4(v):
            return .v4(length == 0 ? 0 : v & ~UInt32(0) << UInt32(32 - length))
        case let .v6(hi, lo):
            if length >= 128 { return ip }
            if length >= 64 {
                let l = length - 64
                return .v6(hi, l == 0 ? 0 : lo & ~UInt64(0) << UInt64(64 - l))
            }
            return .v6(length == 0 ? 0 : hi & ~UInt64(0) << UInt64(64 - length), 0)
        }
    }
}
