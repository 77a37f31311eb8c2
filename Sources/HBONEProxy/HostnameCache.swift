import HBONECore

/// What one loop's hostname lookups found, each kept for its TTL: addresses, or that a name has
/// none of a family (negative caching, RFC 2308). Failures (no answer, SERVFAIL) are not kept, so
/// the next connection asks again. Bounded: full, it drops what has expired, then what expires
/// soonest. A value with the time passed in, so every rule is tested without a loop or a socket.
struct HostnameCache {
    struct Key: Hashable {
        /// Lower case, without a trailing dot.
        let name: String
        let ipv6: Bool

        init(_ hostname: String, ipv6: Bool) {
            // Names from istiod are lower case already: copied only when they are not.
            if hostname.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) || hostname.hasSuffix(".") {
                var n = hostname.lowercased()
                if n.hasSuffix(".") { n.removeLast() }
                name = n
            } else {
                name = hostname
            }
            self.ipv6 = ipv6
        }
    }

    enum Entry: Equatable {
        case addresses([IPAddress])
        /// None of the family asked (NODATA).
        case noAddresses
        /// No such name (NXDOMAIN): none of either family.
        case noName
    }

    private var entries: [Key: (entry: Entry, expires: UInt64)] = [:]
    let capacity: Int

    /// ztunnel's resolver keeps 4,096 answers.
    static let defaultCapacity = 4096
    /// Addresses are kept at least a second (a TTL of 0 would send every connection to the
    /// upstream) and at most a day (hickory's default ceiling).
    static let minTTL: UInt32 = 1
    static let maxTTL: UInt32 = 86_400
    /// A name without addresses: as long as the SOA says, at most 5 minutes; 30 s without an SOA.
    static let maxNegativeTTL: UInt32 = 300
    static let defaultNegativeTTL: UInt32 = 30

    init(capacity: Int = HostnameCache.defaultCapacity) { self.capacity = max(1, capacity) }

    var count: Int { entries.count }

    /// The entry for `key` that has not expired at `now` (nanoseconds on the loop's clock).
    func lookup(_ key: Key, now: UInt64) -> Entry? {
        guard let e = entries[key], e.expires > now else { return nil }
        return e.entry
    }

    /// Keeps `entry` for `ttl` seconds (nil: the answer gave none), clamped as above.
    mutating func store(_ entry: Entry, for key: Key, ttl: UInt32?, now: UInt64) {
        let seconds: UInt32
        switch entry {
        case .addresses: seconds = min(max(ttl ?? Self.minTTL, Self.minTTL), Self.maxTTL)
        case .noAddresses, .noName: seconds = min(max(ttl ?? Self.defaultNegativeTTL, Self.minTTL), Self.maxNegativeTTL)
        }
        if entries[key] == nil, entries.count >= capacity { makeRoom(now: now) }
        entries[key] = (entry, now &+ UInt64(seconds) * 1_000_000_000)
    }

    /// Drops every expired entry; if none had, the one that expires soonest.
    private mutating func makeRoom(now: UInt64) {
        let before = entries.count
        entries = entries.filter { $0.value.expires > now }
        guard entries.count == before, let soonest = entries.min(by: { $0.value.expires < $1.value.expires })?.key else { return }
        entries[soonest] = nil
    }
}
