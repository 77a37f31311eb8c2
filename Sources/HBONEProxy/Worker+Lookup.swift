import HBONECore
import HBONEConfig

extension Worker {
    /// A destination known by hostname only (ztunnel's on-demand DNS). The tunnel is made first,
    /// so it holds what the app sends and sees the app give up; once the name is looked up it is
    /// planned and opened as if the client had dialled the address found (the connect timeout
    /// starts then). Counted per connection in `istio_on_demand_dns_total`, as ztunnel counts it,
    /// an answer from the cache included.
    func openAfterLookup(_ tunnel: Tunnel, hostname: String, port: UInt16, preferIPv6: Bool, destination: Destination,
                         src: SocketAddress, original: SocketAddress, pod: InPodWorkload?) {
        guard let workload = destination.workload else {
            Bug.report("a lookup of \(hostname) without the workload it is for")
            return tunnel.poolFailed(ProxyError(.internal, .config, "a lookup of \(hostname) without its workload"))
        }
        stats.onDemandDNS.add(resolver.labels(source: tunnel.info.srcWorkload, hostname: hostname))
        resolver.lookup(hostname, preferIPv6: preferIPv6) { [weak self, weak tunnel] outcome in
            // The app may have gone meanwhile (the tunnel has closed), or the loop is closing.
            guard let self, let tunnel, tunnel.lifecycle.phase == .connecting else { return }
            switch outcome {
            case let .failed(why):
                tunnel.poolFailed(ProxyError(.upstream, .dnsLookup, "no address for \(hostname): \(why)"))
            case let .addresses(found):
                // 0.0.0.0 and :: are no destination: dialled, they reach this very host.
                let list = found.filter { !$0.isUnspecified }
                guard !list.isEmpty else {
                    stats.onDemandDNSFailures.add("refused_address")
                    return tunnel.poolFailed(ProxyError(.upstream, .dnsLookup, "no address for \(hostname): it resolves only to 0.0.0.0 or ::"))
                }
                // At random among the family asked first, as ztunnel picks (a name's addresses are
                // usually a load-balanced set).
                let preferred = list.filter { $0.isIPv4 != preferIPv6 }
                let ip = (preferred.isEmpty ? list : preferred).randomElement()!
                let found = state.route(to: workload, ip: ip, port: port, service: destination.service)
                tunnel.info.setRoute(found.route)
                let plan = state.planOutbound(src: src, destination: found, original: original, bound: boundAddresses)
                carry(tunnel, plan: plan, service: destination.service, src: src, pod: pod)
            }
        }
    }

    /// ztunnel's `OnDemandDnsLabels`: the source workload's labels and the hostname looked up.
    static func onDemandDNSLabels(source w: Workload?, hostname: String) -> String {
        func known(_ s: String?) -> String { (s?.isEmpty ?? true) ? "unknown" : s! }
        let pairs: [(String, String)] = [
            ("source_workload", known(w?.workloadName)), ("source_canonical_service", known(w?.canonicalName)),
            ("source_canonical_revision", known(w?.canonicalRevision)), ("source_workload_namespace", known(w?.namespace)),
            ("source_principal", known(w?.identity.description)), ("source_app", known(w?.canonicalName)),
            ("source_version", known(w?.canonicalRevision)), ("source_cluster", known(w?.clusterId)), ("hostname", hostname),
        ]
        return pairs.map { "\($0.0)=\"\(PrometheusText.escaped($0.1))\"" }.joined(separator: ",")
    }
}
