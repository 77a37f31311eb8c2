import HBONECore
import HBONEDNS

/// What the proxy reads of a resolv.conf (resolv.conf(5)): its nameservers, its search list and
/// `ndots`, as ztunnel's resolver reads the system's. Lines it does not know are passed over.
public struct ResolvConf: Sendable, Equatable {
    /// The `nameserver` lines, in order (a scoped IPv6 address is skipped), port 53.
    public var nameservers: [SocketAddress] = []
    /// `search` (or `domain`: the last of the two wins), lower case, at most `maxSearch`.
    public var search: [String] = []
    /// `options ndots:N`: a name with fewer dots is tried with the search domains first.
    public var ndots = 1

    /// glibc's limits: six search domains, ndots at most 15.
    public static let maxSearch = 6
    public static let maxNdots = 15

    public init() {}

    public init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first else { continue }
            switch first {
            case "nameserver":
                if words.count >= 2, let ip = IPAddress(String(words[1])) { nameservers.append(SocketAddress(ip: ip, port: 53)) }
            case "search", "domain":
                // A domain ending in a dot is the same domain; the root alone adds nothing.
                search = words.dropFirst().compactMap { word in
                    let domain = word.hasSuffix(".") ? word.dropLast() : word[...]
                    return domain.isEmpty || DNSName(String(domain)) == nil ? nil : domain.lowercased()
                }.prefix(first == "domain" ? 1 : Self.maxSearch).map { $0 }
            case "options":
                for option in words.dropFirst() where option.hasPrefix("ndots:") {
                    if let n = Int(option.dropFirst("ndots:".count)), n >= 0 { ndots = min(n, Self.maxNdots) }
                }
            default:
                continue
            }
        }
    }

    /// The names to ask, in order, for `name` (as glibc and ztunnel's resolver search): a name
    /// ending in a dot is complete; one with at least `ndots` dots is tried as it is first, then
    /// with each search domain; one with fewer, with each search domain first and as it is last.
    /// Names that would be too long for DNS are left out.
    public func candidates(for name: String) -> [String] {
        if name.hasSuffix(".") || search.isEmpty || ndots == 0 { return [name] }
        let dots = name.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) }
        let searched = search.map { "\(name).\($0)" }.filter { DNSName($0) != nil }
        return dots >= ndots ? [name] + searched : searched + [name]
    }
}
