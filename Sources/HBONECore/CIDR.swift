/// An address block such as `10.0.0.0/8` or `fd00::/8`. A bare address is a /32 or /128.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?(_ text: some StringProtocol) {
        let s = String(text)
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let ip = IPAddress(parts[0]) else { return nil }
        let maxLength = ip.isIPv4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3, parts[1].allSatisfy(\.isASCII),
                  let value = Int(parts[1]), value >= 0, value <= maxLength else { return nil }
            length = value
        }
        self.prefixLength = length
        self.network = CIDR.mask(ip, length)
    }

    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.isIPv4 == network.isIPv4 else { return false }
        return CIDR.mask(ip, prefixLength) == network
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
