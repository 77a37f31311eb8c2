/// Values by address block, found for an address with one hash look-up per distinct prefix length
/// (a mesh's ServiceEntries use few) instead of a test of every block: a connection to an address
/// the mesh does not know asks on every new connection.
public struct CIDRTable<Value: Sendable>: Sendable {
    public let entries: [(cidr: CIDR, value: Value)]
    /// Per kind of block and prefix length: entry indexes by network address.
    private let groups: [(v6: Bool, length: Int, indexes: [IPAddress: [Int]])]

    public init(_ entries: [(cidr: CIDR, value: Value)]) {
        self.entries = entries
        var byKey: [Int: [IPAddress: [Int]]] = [:]
        for (i, e) in entries.enumerated() {
            let v6 = !e.cidr.network.isIPv4
            byKey[(v6 ? 1000 : 0) + e.cidr.prefixLength, default: [:]][e.cidr.network, default: []].append(i)
        }
        groups = byKey.keys.sorted().map { key in (key >= 1000, key % 1000, byKey[key]!) }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// Every entry whose block holds `ip` (as `CIDR.contains` says), in the order given.
    public func matches(_ ip: IPAddress) -> [(cidr: CIDR, value: Value)] {
        var found: [Int] = []
        for g in groups {
            let key: IPAddress
            switch (ip, g.v6) {
            case (.v4, false), (.v6, true): key = CIDR.mask(ip, g.length)
            case (.v4, true):
                // An IPv6 block wider than the mapped range holds an IPv4 address's mapped form.
                let (hi, lo) = ip.mappedV6
                key = CIDR.mask(.v6(hi, lo), g.length)
            case (.v6, false): continue
            }
            if let indexes = g.indexes[key] { found += indexes }
        }
        if found.count > 1 { found.sort() }
        return found.map { entries[$0] }
    }
}
