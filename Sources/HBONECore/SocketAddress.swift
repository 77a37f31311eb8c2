/// An IP address and a TCP port.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// `ip:port` or `[v6]:port`, as HTTP's `:authority` and our config write them.
    public var description: String {
        guard case let .v4(v) = ip else { return "[\(ip)]:\(port)" }
        // IPv4 written straight into the string (at most 21 bytes): one per tunnel as `:authority`.
        return String(unsafeUninitializedCapacity: 21) { out in
            var n = IPAddress.writeDottedQuad(v, into: out)
            out[n] = UInt8(ascii: ":")
            n += 1
            return n + IPAddress.writeDecimal(UInt32(port), into: out, at: n)
        }
    }

    /// Parses `ip:port` or `[v6]:port` strictly: port 1–65535, no zone, no extra characters.
    @inlinable public init?(_ text: some StringProtocol) {
        guard case let .success(address) = SocketAddress.parse(substring: Substring(text)) else { return nil }
        self = address
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case tooLong
        case missingPort
        case badPort
        case badAddress
        case unbracketedIPv6

        public var description: String {
            switch self {
            case .empty: return "empty address"
            case .tooLong: return "address too long"
            case .missingPort: return "missing port"
            case .badPort: return "port must be 1-65535"
            case .badAddress: return "not an IP address"
            case .unbracketedIPv6: return "IPv6 address must be in brackets: [addr]:port"
            }
        }
    }

    /// Inlinable for the same reason as `IPAddress.init(_:)`: specialized where it is called.
    @inlinable public static func parse(_ text: some StringProtocol) -> Result<SocketAddress, ParseError> {
        parse(substring: Substring(text))
    }

    @usableFromInline static func parse(substring: Substring) -> Result<SocketAddress, ParseError> {
        var text = substring
        return text.withUTF8 { parse(bytes: $0) }
    }

    /// Scanned as bytes (the delimiters are ASCII): this runs for every inbound tunnel, and
    /// String index arithmetic costs several times the scan itself.
    static func parse(bytes u: UnsafeBufferPointer<UInt8>) -> Result<SocketAddress, ParseError> {
        if u.isEmpty { return .failure(.empty) }
        if u.count > 64 { return .failure(.tooLong) }
        let host: Slice<UnsafeBufferPointer<UInt8>>
        let portText: Slice<UnsafeBufferPointer<UInt8>>
        if u[0] == UInt8(ascii: "[") {
            guard let close = u.firstIndex(of: UInt8(ascii: "]")) else { return .failure(.badAddress) }
            host = u[1..<close]
            guard close + 1 < u.count, u[close + 1] == UInt8(ascii: ":") else { return .failure(.missingPort) }
            portText = u[(close + 2)...]
            guard host.contains(UInt8(ascii: ":")) else { return .failure(.badAddress) }
        } else {
            guard let colon = u.lastIndex(of: UInt8(ascii: ":")) else { return .failure(.missingPort) }
            host = u[..<colon]
            if host.contains(UInt8(ascii: ":")) { return .failure(.unbracketedIPv6) }
            portText = u[(colon + 1)...]
        }
        guard let port = parsePort(bytes: portText) else { return .failure(.badPort) }
        guard let ip = IPAddress(bytes: host) else { return .failure(.badAddress) }
        return .success(SocketAddress(ip: ip, port: port))
    }

    /// Decimal 1–65535, digits only, no sign or leading zeros.
    public static func parsePort(_ text: Substring) -> UInt16? { parsePort(bytes: text.utf8) }

    static func parsePort(bytes u: some Collection<UInt8>) -> UInt16? {
        guard !u.isEmpty, u.count <= 5, u.first != UInt8(ascii: "0") else { return nil }
        var value = 0
        for b in u {
            guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(b - UInt8(ascii: "0"))
        }
        return value <= 65535 ? UInt16(value) : nil
    }
}
