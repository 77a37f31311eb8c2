/// An upstream resolver's answer to one of this proxy's own lookups (`DNSQuery(asking:type:)`),
/// read for what a lookup needs: the addresses of the name asked, reached through the CNAME chain
/// the answer carries, and how long the outcome may be kept. Records about other names, other
/// classes and other types are passed over; every length is checked against the bytes there are.
/// The caller has already checked the message answers its query (`DNSQuery.isAnswered`).
public struct DNSLookupAnswer: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// The name has addresses of the type asked: 4 bytes each for A, 16 for AAAA, in network
        /// order, as many as `maxAddresses`, in the order the upstream gave them.
        case addresses([[UInt8]])
        /// The name does not exist (NXDOMAIN), or has no address of the type asked (NODATA).
        case noAddresses
        /// The upstream could not answer (SERVFAIL, REFUSED, an answer that makes no sense).
        case failed(String)
    }

    public let outcome: Outcome
    /// Seconds the outcome may be kept: the least TTL along the chain for addresses; for no
    /// addresses, the SOA's negative TTL (RFC 2308 5), or nil when the answer carried no SOA.
    public let ttl: UInt32?
    /// TC set: the answer did not fit the datagram, the lookup is asked again over TCP.
    public let truncated: Bool
    /// NXDOMAIN (with `.noAddresses`): the name has no records of any type (RFC 8020), so the
    /// other address family need not be asked.
    public let nameDoesNotExist: Bool

    /// More addresses than this for one name are not kept: a connection needs one of them.
    public static let maxAddresses = 32
    /// CNAMEs followed at most: a longer chain (or a loop) is a failed answer.
    public static let maxChain = 8

    public init(outcome: Outcome, ttl: UInt32?, truncated: Bool = false, nameDoesNotExist: Bool = false) {
        self.outcome = outcome
        self.ttl = ttl
        self.truncated = truncated
        self.nameDoesNotExist = nameDoesNotExist
    }

    /// Reads `response` to `query`. Never throws: a message that cannot be read is `.failed`.
    public init(parsing response: [UInt8], for query: DNSQuery) {
        guard response.count >= 12 else {
            self.init(outcome: .failed("shorter than a header"), ttl: nil)
            return
        }
        let flags = UInt16(response[2]) << 8 | UInt16(response[3])
        if flags & 0x0200 != 0 {
            self.init(outcome: .failed("truncated"), ttl: nil, truncated: true)
            return
        }
        let code = flags & 0x000f
        guard code == 0 || code == 3 else {
            self.init(outcome: .failed(Self.codeName(code)), ttl: nil)
            return
        }
        guard let sections = Self.read(response) else {
            self.init(outcome: .failed("a record is cut short or malformed"), ttl: nil)
            return
        }
        let negativeTTL = sections.soaTTL
        if code == 3 {
            self.init(outcome: .noAddresses, ttl: negativeTTL, nameDoesNotExist: true)
            return
        }
        // Follow the chain from the name asked: its addresses, else its CNAME's, and so on.
        var name = query.name, ttl = UInt32.max
        for _ in 0...Self.maxChain {
            let found = sections.addresses.filter { $0.type == query.type && $0.owner.sameName(as: name) }
            if !found.isEmpty {
                let kept = found.prefix(Self.maxAddresses)
                let least = kept.map(\.ttl).min() ?? 0
                self.init(outcome: .addresses(kept.map(\.data)), ttl: min(ttl, least))
                return
            }
            guard let alias = sections.aliases.first(where: { $0.owner.sameName(as: name) }) else {
                self.init(outcome: .noAddresses, ttl: negativeTTL)
                return
            }
            ttl = min(ttl, alias.ttl)
            name = alias.target
        }
        self.init(outcome: .failed("a CNAME chain longer than \(Self.maxChain)"), ttl: nil)
    }

    private struct Address { let owner: DNSName; let type: UInt16; let ttl: UInt32; let data: [UInt8] }
    private struct Alias { let owner: DNSName; let ttl: UInt32; let target: DNSName }
    private struct Sections { var addresses: [Address] = []; var aliases: [Alias] = []; var soaTTL: UInt32? }

    /// The answer section's A, AAAA and CNAME records of class IN, and the authority section's SOA
    /// (for the negative TTL); nil when any record is cut short or malformed.
    private static func read(_ m: [UInt8]) -> Sections? {
        func count(_ i: Int) -> Int { Int(UInt16(m[2 * i]) << 8 | UInt16(m[2 * i + 1])) }
        var reader = DNSReader(m, at: 12)
        for _ in 0..<count(2) {
            guard reader.name() != nil, reader.skip(4) else { return nil }
        }
        var out = Sections()
        for section in 0..<2 {
            for _ in 0..<count(3 + section) {
                guard let owner = reader.name(), let type = reader.u16(), let rclass = reader.u16(),
                      let high = reader.u16(), let low = reader.u16(), let length = reader.u16() else { return nil }
                let start = reader.at
                guard reader.skip(Int(length)) else { return nil }
                // RFC 2181 8: a TTL with its top bit set is read as 0.
                let raw = UInt32(high) << 16 | UInt32(low)
                let ttl = raw & 0x8000_0000 != 0 ? 0 : raw
                guard rclass == 1 else { continue }
                switch (section, type) {
                case (0, DNSType.a), (0, DNSType.aaaa):
                    guard Int(length) == (type == DNSType.a ? 4 : 16) else { return nil }
                    out.addresses.append(Address(owner: owner, type: type, ttl: ttl, data: Array(m[start..<(start + Int(length))])))
                case (0, DNSType.cname):
                    var inner = DNSReader(m, at: start)
                    guard let target = inner.name(), inner.at == start + Int(length) else { return nil }
                    out.aliases.append(Alias(owner: owner, ttl: ttl, target: target))
                case (1, DNSType.soa):
                    // MNAME, RNAME, then SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
                    var inner = DNSReader(m, at: start)
                    guard inner.name() != nil, inner.name() != nil, inner.skip(16), let h = inner.u16(), let l = inner.u16(),
                          inner.at == start + Int(length) else { return nil }
                    let minimum = UInt32(h) << 16 | UInt32(l)
                    out.soaTTL = min(ttl, minimum & 0x8000_0000 != 0 ? 0 : minimum)
                default:
                    break
                }
            }
        }
        return out
    }

    static func codeName(_ code: UInt16) -> String {
        switch code {
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        default: "response code \(code)"
        }
    }
}
