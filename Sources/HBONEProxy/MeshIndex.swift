import HBONECore
import HBONEConfig

/// The routing tables of the mesh (workloads by address, services by VIP, hostname, CIDR and key,
/// each service's endpoint set, the network gateways), kept up to date one changed workload or
/// service at a time: an xDS push costs what it changed, plus copying the tables a snapshot still
/// holds, where building them all again cost time in proportion to the whole mesh.
///
/// A build from nothing makes the same claims as changes do, then every table from them at once
/// (`MeshIndexTests` and the `xds` fuzz target check that the two paths agree). Where several
/// workloads claim one address (or services one key), the winner is the one of greatest
/// `MeshSourceID`: the last in the order the merged config lists them (file by position, then
/// istiod's by resource name), as the build before the index let it overwrite the others.
public struct MeshIndex: Sendable {
    public let network: String
    public let node: String
    /// Everything indexed, by where it came from.
    public private(set) var workloads: [MeshSourceID: Workload] = [:]
    public private(set) var services: [MeshSourceID: Service] = [:]

    public private(set) var workloadsByIP: [IPAddress: Workload] = [:]
    public private(set) var localWorkloadsByIP: [IPAddress: Workload] = [:]
    public private(set) var servicesByVIP: [IPAddress: Service] = [:]
    public private(set) var servicesByHostname: [String: Service] = [:]
    public private(set) var sharedServicesByVIP: [IPAddress: [Service]] = [:]
    public private(set) var sharedServicesByHostname: [String: [Service]] = [:]
    public private(set) var servicesByCIDR = CIDRTable<Service>([])
    public private(set) var wildcardHostnameSuffixes: Set<String> = []
    public private(set) var servicesByKey: [String: Service] = [:]
    public private(set) var endpointSets: [String: EndpointSet] = [:]
    public private(set) var localEndpointSets: [String: EndpointSet] = [:]
    public private(set) var servicesWithEndpointsElsewhere: Set<String> = []
    public private(set) var networkGateways: [NetworkAddress: Workload] = [:]
    /// Services by their VIPs on other networks (of several: as `servicesByVIP` chooses). Only a
    /// waypoint named by such an address looks here: traffic to another network's VIP is not
    /// routed (its addresses mean nothing here).
    public private(set) var remoteServicesByVIP: [NetworkAddress: Service] = [:]

    // Who claims what, to find the next winner when one goes.
    private var ipClaims = ClaimTable<IPAddress, Workload>()
    private var localIPClaims = ClaimTable<IPAddress, Workload>()
    private var vipClaims = ClaimTable<IPAddress, Service>()
    private var remoteVIPClaims = ClaimTable<NetworkAddress, Service>()
    private var hostnameClaims = ClaimTable<String, Service>()
    private var keyClaims = ClaimTable<String, Service>()
    /// The workloads listing each service key, on any network.
    private var members = ClaimTable<String, Workload>()
    /// Services with a CIDR VIP on this network (rare: the table is built again when one changes).
    private var cidrServices: Set<MeshSourceID> = []
    /// How many workloads name each network gateway address.
    private var gatewayReferences: [NetworkAddress: Int] = [:]

    public init(network: String, node: String) {
        self.network = network
        self.node = node
    }

    /// The index of `config`'s workloads and services (by position), and of istiod's (by
    /// resource name) after them, built from nothing.
    public init(config: ProxyConfig, xdsWorkloads: [String: Workload] = [:], xdsServices: [String: Service] = [:]) {
        self.init(network: config.settings.network, node: config.settings.node)
        apply(workloads: config.workloads.enumerated().map { (.file($0.offset), $0.element) } + xdsWorkloads.map { (.xds($0.key), $0.value) },
              services: config.services.enumerated().map { (.file($0.offset), $0.element) } + xdsServices.map { (.xds($0.key), $0.value) })
    }

    /// The workloads that list `key` in their services, in the config's order.
    public func workloads(listing key: String) -> [Workload] { members.all(key) }

    /// Sets each workload and service named (nil removes it; each id at most once per call) and
    /// brings the tables they touch up to date.
    public mutating func apply(workloads workloadChanges: [(MeshSourceID, Workload?)], services serviceChanges: [(MeshSourceID, Service?)]) {
        // From nothing (start, a file reload, the first xDS push): every table is built, from the
        // claims once all are made, rather than key by key as they are touched.
        let fromNothing = workloads.isEmpty && services.isEmpty
        if fromNothing {
            workloads.reserveCapacity(workloadChanges.count)
            services.reserveCapacity(serviceChanges.count)
            ipClaims.reserveCapacity(workloadChanges.count)
            workloadsByIP.reserveCapacity(workloadChanges.count)
        }
        var touched = Touched(everything: fromNothing)
        for (id, new) in serviceChanges {
            let old = fromNothing ? nil : services[id]
            guard old != new else { continue }
            if let old { index(old, id, adding: false, &touched) }
            services[id] = new
            if let new { index(new, id, adding: true, &touched) }
        }
        for (id, new) in workloadChanges {
            let old = fromNothing ? nil : workloads[id]
            guard old != new else { continue }
            if let old { index(old, id, adding: false, &touched) }
            workloads[id] = new
            if let new { index(new, id, adding: true, &touched) }
        }
        if fromNothing { buildAll() } else { rebuild(touched) }
    }

    /// What a change set touched, rebuilt once at its end. `everything`: nothing is noted one by
    /// one (all is built).
    private struct Touched {
        let everything: Bool
        var ips: Set<IPAddress> = []
        var localIPs: Set<IPAddress> = []
        var vips: Set<IPAddress> = []
        var remoteVIPs: Set<NetworkAddress> = []
        var hostnames: Set<String> = []
        var serviceKeys: Set<String> = []
        var endpointKeys: Set<String> = []
        var cidrs = false
        var gateways = false
        /// Addresses of changed workloads on any network: a network gateway's own may be among them.
        var networkAddresses: [NetworkAddress] = []
    }

    private mutating func index(_ s: Service, _ id: MeshSourceID, adding: Bool, _ t: inout Touched) {
        let value = adding ? s : nil
        for a in s.addresses {
            if a.network == network {
                vipClaims.update(a.ip, id, value)
                if !t.everything { t.vips.insert(a.ip) }
            } else {
                remoteVIPClaims.update(a, id, value)
                if !t.everything { t.remoteVIPs.insert(a) }
            }
        }
        hostnameClaims.update(s.hostname, id, value)
        keyClaims.update(s.key, id, value)
        if !t.everything {
            t.hostnames.insert(s.hostname)
            t.serviceKeys.insert(s.key)
        }
        if s.cidrVIPs.contains(where: { $0.network == network }) {
            if adding { cidrServices.insert(id) } else { cidrServices.remove(id) }
            t.cidrs = true
        }
    }

    private mutating func index(_ w: Workload, _ id: MeshSourceID, adding: Bool, _ t: inout Touched) {
        let value = adding ? w : nil
        if case let .address(net, ip)? = w.networkGateway?.destination {
            let address = NetworkAddress(network: net, ip: ip)
            let count = gatewayReferences[address, default: 0] + (adding ? 1 : -1)
            gatewayReferences[address] = count > 0 ? count : nil
            if count == 0 || (adding && count == 1) { t.gateways = true }
        }
        for key in w.services.keys {
            members.update(key, id, value)
            if !t.everything { t.endpointKeys.insert(key) }
        }
        if !t.everything {
            for ip in w.workloadIps { t.networkAddresses.append(NetworkAddress(network: w.network, ip: ip)) }
        }
        // An address means something on its own network only: another network's pods may reuse
        // this one's IPs, and are reached through that network's gateway.
        guard w.network == network else { return }
        let local = w.node == node
        for ip in w.workloadIps {
            ipClaims.update(ip, id, value)
            if local { localIPClaims.update(ip, id, value) }
            if !t.everything {
                t.ips.insert(ip)
                if local { t.localIPs.insert(ip) }
            }
        }
    }

    /// Every table from the claims.
    private mutating func buildAll() {
        ipClaims.forEachWinner { workloadsByIP[$0] = $1 }
        localIPClaims.forEachWinner { localWorkloadsByIP[$0] = $1 }
        keyClaims.forEachWinner { servicesByKey[$0] = $1 }
        vipClaims.forEachKey { place($1, atVIP: $0) }
        remoteVIPClaims.forEachKey { remoteServicesByVIP[$0] = ProxyState.bestService(among: $1, forNamespace: nil) }
        hostnameClaims.forEachKey { place($1, atHostname: $0) }
        rebuildCIDRs()
        members.forEachKey { key, list in rebuildEndpoints(key, list) }
        rebuildGateways()
    }

    private mutating func rebuild(_ t: Touched) {
        for ip in t.ips { workloadsByIP[ip] = ipClaims.winner(ip) }
        for ip in t.localIPs { localWorkloadsByIP[ip] = localIPClaims.winner(ip) }
        var endpointKeys = t.endpointKeys
        for key in t.serviceKeys {
            servicesByKey[key] = keyClaims.winner(key)
            endpointKeys.insert(key)   // its load balancing shapes its endpoint set
        }
        for vip in t.vips { place(vipClaims.all(vip), atVIP: vip) }
        for vip in t.remoteVIPs { remoteServicesByVIP[vip] = ProxyState.bestService(among: remoteVIPClaims.all(vip), forNamespace: nil) }
        for host in t.hostnames { place(hostnameClaims.all(host), atHostname: host) }
        if t.cidrs { rebuildCIDRs() }
        for key in endpointKeys { rebuildEndpoints(key, members.all(key)) }
        if t.gateways || (!gatewayReferences.isEmpty && t.networkAddresses.contains(where: { gatewayReferences[$0] != nil })) {
            rebuildGateways()
        }
    }

    /// The services at `vip` on this network (none: the entries go), as ztunnel chooses among them.
    private mutating func place(_ list: [Service], atVIP vip: IPAddress) {
        servicesByVIP[vip] = ProxyState.bestService(among: list, forNamespace: nil)
        sharedServicesByVIP[vip] = ProxyState.dependsOnTheClient((vip, list)) ? list : nil
    }

    /// The same for a hostname, and its wildcard suffix.
    private mutating func place(_ list: [Service], atHostname host: String) {
        servicesByHostname[host] = ProxyState.bestService(among: list, forNamespace: nil)
        sharedServicesByHostname[host] = ProxyState.dependsOnTheClient((host, list)) ? list : nil
        if host.hasPrefix("*.") {
            if list.isEmpty { wildcardHostnameSuffixes.remove(String(host.dropFirst(2))) } else { wildcardHostnameSuffixes.insert(String(host.dropFirst(2))) }
        }
    }

    /// The CIDR VIPs on this network, from every service that has one.
    private mutating func rebuildCIDRs() {
        var entries: [(cidr: CIDR, value: Service)] = []
        for id in cidrServices.sorted() {
            guard let s = services[id] else { continue }
            for c in s.cidrVIPs where c.network == network { entries.append((c.cidr, s)) }
        }
        servicesByCIDR = CIDRTable(entries)
    }

    /// A service's endpoints: workloads listing it (`all`, in order) that are on this network with
    /// an address (or a hostname, looked up when picked), or on another network behind a gateway
    /// (istiod's stand-in for a remote network's endpoints has no address).
    private mutating func rebuildEndpoints(_ key: String, _ all: [Workload]) {
        var list: [Workload] = []
        list.reserveCapacity(all.count)
        var elsewhere = false
        for w in all {
            if w.network == network {
                // Without an address (istiod sends pods not yet given one) it cannot be dialled.
                if !w.workloadIps.isEmpty || !w.hostname.isEmpty { list.append(w) }
            } else {
                elsewhere = true
                if w.networkGateway != nil { list.append(w) }
            }
        }
        if elsewhere { servicesWithEndpointsElsewhere.insert(key) } else { servicesWithEndpointsElsewhere.remove(key) }
        let balancer = servicesByKey[key]?.loadBalancer
        endpointSets[key] = list.isEmpty ? nil : EndpointSet(list, balancer: balancer)
        // A gateway, or a waypoint in front of a pod addressed by IP, is never reached through
        // another gateway: those ask for this network's endpoints only.
        localEndpointSets[key] = list.contains(where: { $0.network != network }) ? EndpointSet(list.filter { $0.network == network }, balancer: balancer) : nil
    }

    /// The workloads network gateways name by address, on any network. Built again only when the
    /// set of named addresses changes or a workload at one of them does (rare).
    private mutating func rebuildGateways() {
        var found: [NetworkAddress: (id: MeshSourceID, workload: Workload)] = [:]
        if !gatewayReferences.isEmpty {
            for (id, w) in workloads {
                for ip in w.workloadIps {
                    let address = NetworkAddress(network: w.network, ip: ip)
                    guard gatewayReferences[address] != nil else { continue }
                    if let seen = found[address], seen.id > id { continue }
                    found[address] = (id, w)
                }
            }
        }
        networkGateways = found.mapValues(\.workload)
    }
}

/// Where a workload or service of the merged config came from. Its order is the merged config's:
/// the file's by position, then istiod's by resource name.
public enum MeshSourceID: Hashable, Comparable, Sendable {
    case file(Int)
    case xds(String)
}
