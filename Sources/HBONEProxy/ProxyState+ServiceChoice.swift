import HBONECore
import HBONEConfig

/// Which service a VIP or a hostname names for a client, as ztunnel chooses: only services visible
/// to the client's namespace; of several, the one in the client's namespace, else the canonical
/// one (the last marked), else the first.
extension ProxyState {
    /// The service at `ip` on this network for a connection from `source`; nil when there is none
    /// the client may see (its VIP is then an address the mesh does not know).
    /// An address in no exact VIP falls back to the services' CIDR VIPs (as ztunnel does).
    func service(atVIP ip: IPAddress, from source: IPAddress?) -> Service? {
        if !sharedServicesByVIP.isEmpty, let several = sharedServicesByVIP[ip] {
            return Self.bestService(among: several, forNamespace: clientNamespace(source))
        }
        if let s = servicesByVIP[ip] { return s }
        guard !servicesByCIDR.isEmpty else { return nil }
        return service(inCIDRsAt: ip, forNamespace: clientNamespace(source))
    }

    /// ztunnel's order among CIDR VIPs holding `ip`: the client's own namespace first (a wider
    /// block there beats a narrower one elsewhere), then the longest prefix, then canonical; the
    /// first listed on a tie. Services the client's namespace may not see are skipped.
    func service(inCIDRsAt ip: IPAddress, forNamespace namespace: String?) -> Service? {
        var best: (rank: (Int, Int, Int), service: Service)?
        for (cidr, s) in servicesByCIDR.matches(ip) where s.isVisible(to: namespace) {
            let rank = (namespace == s.namespace ? 1 : 0, cidr.prefixLength, s.canonical ? 1 : 0)
            if best.map({ rank > $0.rank }) ?? true { best = (rank, s) }
        }
        return best?.service
    }

    /// The same by hostname (SOCKS5).
    func service(atHostname hostname: String, from source: IPAddress?) -> Service? {
        guard !sharedServicesByHostname.isEmpty, let several = sharedServicesByHostname[hostname] else { return servicesByHostname[hostname] }
        return Self.bestService(among: several, forNamespace: clientNamespace(source))
    }

    /// The namespace of the workload at `source`; nil for a client that is none (SOCKS5 from the
    /// node), which sees every service.
    private func clientNamespace(_ source: IPAddress?) -> String? {
        source.flatMap { workloadsByIP[$0]?.namespace }
    }

    /// `namespace` nil: no visibility filter, and no namespace to prefer. After the client's own
    /// namespace: the last canonical one, else the last in `preferred` (DNS only, ztunnel's
    /// PREFERED_SERVICE_NAMESPACE), else the first.
    static func bestService(among services: [Service], forNamespace namespace: String?, preferring preferred: String? = nil) -> Service? {
        var best: Service?
        var canonical = false
        for s in services where s.isVisible(to: namespace) {
            if let namespace, s.namespace == namespace { return s }
            if s.canonical {
                best = s
                canonical = true
            } else if !canonical, let preferred, s.namespace == preferred {
                best = s
            } else if best == nil {
                best = s
            }
        }
        return best
    }

    /// Whether who the client is can change which service `services` resolve to.
    static func dependsOnTheClient(_ entry: (key: some Hashable, value: [Service])) -> Bool {
        entry.value.count > 1 || entry.value.contains { $0.visibility != .public }
    }
}
