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
        ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
    }

    /// Parses `ip:port` or `[v6]:port` strictly: port 1–65535, no zone, no extra characters.
    public init?(_ text: some StringProtocol) {
        guard case let .success(address) = SocketAddress.parse(text) else { return nil }
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

    public static func parse(_ text: some StringProtocol) -> Result<SocketAddress, ParseError> {
        let s = Substring(text)
        if s.isEmpty { return .failure(.empty) }
        if s.utf8.count > 64 { return .failure(.tooLong) }
        let host: Substring
        let portText: Substring
        // Scanned as bytes: the delimiters are ASCII, and Character iteration costs per call.
        let u = s.utf8
        if u.first == UInt8(ascii: "[") {
            guard let close = u.firstIndex(of: UInt8(ascii: "]")) else { return .failure(.badAddress) }
            host = s[u.index(after: u.startIndex)..<close]
            let afterClose = u.index(after: close)
            guard afterClose != u.endIndex, u[afterClose] == UInt8(ascii: ":") else { return .failure(.missingPort) }
            portText = s[u.index(after: afterClose)...]
            guard host.utf8.contains(UInt8(ascii: ":")) else { return .failure(.badAddress) }
        } else {
            guard let colon = u.lastIndex(of: UInt8(ascii: ":")) else { return .failure(.missingPort) }
            host = s[..<colon]
            if host.utf8.contains(UInt8(ascii: ":")) { return .failure(.unbracketedIPv6) }
            portText = s[u.index(after: colon)...]
        }
        guard let port = parsePort(portText) else { return .failure(.badPort) }
        guard let ip = IPAddress(host) else { return .failure(.badAddress) }
        return .success(SocketAddress(ip: ip, port: port))
    }

    /// Decimal 1–65535, digits only, no sign or leading zeros.
    public static func parsePort(_ text: Substring) -> UInt16? {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        if text.utf8.count > 1 && text.utf8.first == 48 { return nil }
        guard let value = Int(text), value >= 1, value <= 65535 else { return nil }
        return UInt16(value)
    }
}
