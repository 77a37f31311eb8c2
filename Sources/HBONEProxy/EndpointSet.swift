import HBONECore
import HBONEConfig

/// A service's endpoints as its load balancing sees them, built once per snapshot so a connection
/// costs one pass over a few groups, not over every endpoint: those on this network with an
/// address, and those on other networks behind a gateway; unhealthy ones only if the service's
/// health policy allows all. Picked as ztunnel picks: among the endpoints that meet the most of the
/// service's routing preferences (Failover) or all of them (Strict), weighted by capacity.
public struct EndpointSet: Sendable {
    /// What a connection's source shares, or not, with an endpoint (ztunnel compares the source
    /// workload's own fields).
    public struct Client: Sendable, Hashable {
        public var network: String
        public var locality: Locality
        public var node: String
        public var cluster: String

        public init(network: String, locality: Locality = Locality(), node: String = "", cluster: String = "") {
            self.network = network
            self.locality = locality
            self.node = node
            self.cluster = cluster
        }

        public init(_ w: Workload) {
            self.init(network: w.network, locality: w.locality, node: w.node, cluster: w.clusterId)
        }

        /// Its fields the scopes compare; the others blank, so alike endpoints share a group.
        func place(in scopes: [LoadBalancer.Scope]) -> Client {
            var p = Client(network: "")
            for scope in scopes {
                switch scope {
                case .region: p.locality.region = locality.region
                case .zone: p.locality.zone = locality.zone
                case .subzone: p.locality.subzone = locality.subzone
                case .node: p.node = node
                case .cluster: p.cluster = cluster
                case .network: p.network = network
                }
            }
            return p
        }
    }

    /// Endpoints alike in every scope the service prefers (so ranked alike for any client).
    struct Group: Sendable {
        let place: Client
        let endpoints: [Workload]
        /// Running sums of the endpoints' capacities; empty when each is 1 (the index is then the pick).
        let cumulative: [UInt64]
        let weight: UInt64
    }

    let groups: [Group]
    public let balancer: LoadBalancer
    /// The preferences endpoints are ranked by (none in the standard mode).
    let scopes: [LoadBalancer.Scope]
    /// Endpoints left out for being unhealthy (so a refusal can say so).
    public let unhealthy: Int
    /// Each group's index by its place, when there are more than `scanLimit` groups.
    let groupByPlace: [Client: Int]

    /// Every endpoint that may be picked, group by group (config order within a group).
    public var endpoints: [Workload] { groups.flatMap(\.endpoints) }
    /// No endpoint may be picked, whoever asks (each group has at least one).
    public var isEmpty: Bool { groups.isEmpty }

    /// `endpoints` in config order; `balancer` nil is the standard mode.
    init(_ endpoints: [Workload], balancer: LoadBalancer?) {
        let balancer = balancer ?? LoadBalancer()
        self.balancer = balancer
        let allowAll = balancer.healthPolicy == .allowAll
        let usable = endpoints.filter { allowAll || $0.status == .healthy }
        unhealthy = endpoints.count - usable.count
        let scopes = balancer.mode == .standard ? [] : balancer.routingPreferences
        self.scopes = scopes
        var order: [Client] = [], members: [Client: [Workload]] = [:]
        if scopes.isEmpty {
            // One group: no place to compare (and nothing to hash per endpoint on a reload).
            if !usable.isEmpty { order = [Client(network: "")] }
        } else {
            for w in usable {
                let place = Client(w).place(in: scopes)
                if members[place] == nil { order.append(place) }
                members[place, default: []].append(w)
            }
        }
        groups = order.map { place in
            let list = scopes.isEmpty ? usable : members[place] ?? []
            var sums: [UInt64] = [], total: UInt64 = 0
            if list.contains(where: { $0.capacity != 1 }) {
                sums.reserveCapacity(list.count)
                for w in list { total += UInt64(w.capacity); sums.append(total) }
            } else {
                total = UInt64(list.count)
            }
            return Group(place: place, endpoints: list, cumulative: sums, weight: total)
        }
        // Many groups (a service kept to the client's node, with endpoints on hundreds of nodes):
        // the group that meets every preference is found by its place, not by ranking them all.
        groupByPlace = groups.count > Self.scanLimit ? Dictionary(uniqueKeysWithValues: order.enumerated().map { ($0.element, $0.offset) }) : [:]
    }

    /// Up to this many groups, ranking them all costs less than hashing the client's place.
    static let scanLimit = 8

    /// One endpoint for `client`, chosen by `hashKey` (the client's source port: consecutive
    /// ports take the endpoints in turn, each as often as its capacity says); nil when none may be
    /// picked (none usable, none that meets Strict preferences, or every capacity 0).
    /// `client` is asked for only when the service ranks by preferences.
    public func pick(for client: @autoclosure () -> Client, hashKey: Int) -> Workload? {
        let client = scopes.isEmpty ? Client(network: "") : client()
        // The group that meets every preference ranks above all others (Strict keeps only it).
        if !groupByPlace.isEmpty {
            if let i = groupByPlace[client.place(in: scopes)], groups[i].weight > 0 {
                return Self.pick(in: groups[i], Self.selector(hashKey, total: groups[i].weight))
            }
            if balancer.mode == .strict { return nil }
        }
        var best = -1, total: UInt64 = 0
        for g in groups {
            guard let r = rank(g, for: client), g.weight > 0 else { continue }
            if r > best { best = r; total = 0 }
            if r == best { total += g.weight }
        }
        guard total > 0 else { return nil }
        var r = Self.selector(hashKey, total: total)
        for g in groups where g.weight > 0 && rank(g, for: client) == best {
            guard r >= g.weight else { return Self.pick(in: g, r) }
            r -= g.weight
        }
        Bug.report("endpoint pick ran past its groups' total weight \(total)")
        return nil
    }

    /// Where `hashKey` falls in `total` units of weight. Past the range of source ports a plain
    /// modulo would reach only the first part of the weights: the key is spread over 64 bits first.
    private static func selector(_ hashKey: Int, total: UInt64) -> UInt64 {
        (total <= 1 << 14 ? UInt64(hashKey.magnitude) : mix(UInt64(bitPattern: Int64(hashKey)))) % total
    }

    /// The endpoint of `g` whose share of its weight holds `r` (< `g.weight`).
    private static func pick(in g: Group, _ r: UInt64) -> Workload {
        g.endpoints[g.cumulative.isEmpty ? Int(r) : firstAbove(r, in: g.cumulative)]
    }

    /// ztunnel's rank: how many preferences, in order, `g` meets for `client` (a Network
    /// preference listed first outranks all the others together); nil when Strict and one is unmet.
    private func rank(_ g: Group, for client: Client) -> Int? {
        guard !scopes.isEmpty else { return 0 }
        let networkFirst = scopes[0] == .network
        var rank = 0, bonus = 0
        for scope in scopes {
            let met: Bool
            switch scope {
            case .region: met = g.place.locality.region == client.locality.region
            case .zone: met = g.place.locality.zone == client.locality.zone
            case .subzone: met = g.place.locality.subzone == client.locality.subzone
            case .node: met = g.place.node == client.node
            case .cluster: met = g.place.cluster == client.cluster
            case .network:
                met = g.place.network == client.network
                if networkFirst {
                    // Another network may still match on the rest, below any endpoint on this one.
                    guard met else { continue }
                    bonus = scopes.count - 1
                }
            }
            guard met else { break }
            rank += 1
        }
        if balancer.mode == .strict && rank != scopes.count { return nil }
        return rank + bonus
    }

    /// The index of the first running sum above `r` (that endpoint's share holds `r`).
    private static func firstAbove(_ r: UInt64, in sums: [UInt64]) -> Int {
        var lo = 0, hi = sums.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if sums[mid] > r { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// splitmix64's finaliser.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
