import HBONECore
import HBONEConfig
import HBONEDNS

/// What the DNS proxy does with a question: answer it from the mesh's services, or forward it.
public enum DNSResolution: Equatable, Sendable {
    /// Not a name the mesh holds for this client (or not an A/AAAA question): ask upstream.
    case forward
    /// The mesh's answer (authoritative). No records: the name exists but has no address of the
    /// type asked (NOERROR, no data; never NXDOMAIN, which would also deny the other type).
    case answer([DNSRecord])
}

/// Names answered as ztunnel answers them: a service's hostname, reached from the client's point of
/// view (its namespace's search domains, the short Kubernetes forms, `*.` wildcards of
/// ServiceEntries), gives the service's VIPs on the client's network, or a headless service's
/// endpoint addresses. Every other name, and every other type, is forwarded.
extension ProxyState {
    /// ztunnel's TTL for the names it answers.
    public static let dnsTTL: UInt32 = 30

    /// `client`: the workload asking (in-pod: the pod; else the workload at the source address),
    /// nil when unknown. `rotate`: where the address list starts (spreads clients over VIPs).
    public func resolveDNS(_ name: DNSName, type: UInt16, client: Workload?, rotate: Int = 0) -> DNSResolution {
        guard type == DNSType.a || type == DNSType.aaaa, let requested = name.key, !requested.isEmpty else { return .forward }
        let domain = settings.dns.clusterDomain
        let namespace = client?.namespace
        for alias in dnsAliases(requested, domain: domain, namespace: namespace) {
            // The alias itself, then its wildcards: www.example.com, *.example.com, *.com.
            var search = Substring(alias.name), key = alias.name, wildcard = false
            while true {
                if let service = dnsService(key, domain: domain, namespace: namespace) {
                    return .answer(dnsRecords(service, asked: name, type: type, client: client,
                                              cnameTo: wildcard ? nil : alias.stripped, rotate: rotate))
                }
                guard let dot = search.firstIndex(of: ".") else { break }
                search = search[search.index(after: dot)...]
                key = "*." + search
                wildcard = true
            }
        }
        return .forward
    }

    /// The answer's records: a CNAME to the shorter name when the service was found by taking a
    /// search domain off (as ztunnel answers), then the addresses, from `rotate` on.
    private func dnsRecords(_ service: Service, asked name: DNSName, type: UInt16, client: Workload?,
                            cnameTo stripped: String?, rotate: Int) -> [DNSRecord] {
        var addresses = dnsAddresses(of: service, type: type, network: client?.network ?? settings.network)
        guard !addresses.isEmpty else { return [] }
        if addresses.count > 1 {
            let start = rotate.magnitude % UInt(addresses.count)
            addresses = Array(addresses[Int(start)...] + addresses[..<Int(start)])
        }
        var records: [DNSRecord] = []
        var ipName = name
        if let stripped, let target = DNSName(stripped) {
            records.append(DNSRecord(name: name, ttl: Self.dnsTTL, data: .cname(target)))
            ipName = target
        }
        for ip in addresses {
            switch ip {
            case let .v4(v): records.append(DNSRecord(name: ipName, ttl: Self.dnsTTL, data: .a(v)))
            case let .v6(hi, lo):
                let bytes = (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? hi : lo) >> UInt64(56 - 8 * (i % 8))) }
                records.append(DNSRecord(name: ipName, ttl: Self.dnsTTL, data: .aaaa(bytes)))
            }
        }
        return records
    }

    struct DNSAlias: Equatable {
        var name: String
        /// The requested name less the search domain that produced this alias.
        var stripped: String?
    }

    /// The names a request may mean, in order: as asked, its Kubernetes expansions, and the same for
    /// the request less each of the client's search domains (`<ns>.svc.<domain>`, `svc.<domain>`,
    /// `<domain>`: a pod's resolv.conf, which the proxy cannot read, is assumed to be Kubernetes').
    func dnsAliases(_ requested: String, domain: String, namespace: String?) -> [DNSAlias] {
        var out: [DNSAlias] = []
        var seen: Set<String> = []
        func add(_ name: String, _ stripped: String?) {
            if seen.insert(name).inserted { out.append(DNSAlias(name: name, stripped: stripped)) }
        }
        add(requested, nil)
        for e in kubernetesNames(requested, domain: domain, namespace: namespace) { add(e, nil) }
        var searchDomains = ["svc." + domain, domain]
        if let namespace { searchDomains.insert("\(namespace).svc.\(domain)", at: 0) }
        for d in searchDomains where requested.hasSuffix("." + d) {
            let stripped = String(requested.dropLast(d.count + 1))
            add(stripped, stripped)
            for e in kubernetesNames(stripped, domain: domain, namespace: namespace) { add(e, stripped) }
        }
        return out
    }

    /// A short name's Kubernetes forms: `svc` and `pod.subdomain` in the client's namespace,
    /// `svc.ns`, `svc.ns.svc`, `pod.subdomain.ns`, `pod.subdomain.ns.svc`, each with the domain.
    private func kubernetesNames(_ name: String, domain: String, namespace: String?) -> [String] {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        let inNamespace = namespace.map { "\(name).\($0).svc.\(domain)" }
        switch labels.count {
        case 1: return inNamespace.map { [$0] } ?? []
        case 2: return ["\(name).svc.\(domain)"] + (inNamespace.map { [$0] } ?? [])
        case 3: return (labels[2] == "svc" ? ["\(name).\(domain)"] : []) + ["\(name).svc.\(domain)"]
        case 4 where labels[3] == "svc": return ["\(name).\(domain)"]
        default: return []
        }
    }

    /// The service `hostname` names for this client: one with a VIP, or a Kubernetes headless
    /// service (its endpoints' addresses are the answer); others (a ServiceEntry without addresses)
    /// are left to upstream DNS. Then visibility and the client's namespace, as for connections.
    private func dnsService(_ hostname: String, domain: String, namespace: String?) -> Service? {
        let candidates = sharedServicesByHostname[hostname] ?? servicesByHostname[hostname].map { [$0] } ?? []
        guard !candidates.isEmpty else { return nil }
        let answerable = candidates.filter { !$0.addresses.isEmpty || $0.hostname.hasSuffix(".svc." + domain) }
        return Self.bestService(among: answerable, forNamespace: namespace)
    }

    /// VIPs of the type asked on the client's network; a headless service's endpoints (healthy,
    /// unless the service allows all), each endpoint's first address of that type.
    private func dnsAddresses(of service: Service, type: UInt16, network: String) -> [IPAddress] {
        let v4 = type == DNSType.a
        if !service.addresses.isEmpty {
            return service.addresses.filter { $0.network == network && $0.ip.isIPv4 == v4 }.map(\.ip)
        }
        let endpoints = endpointSets[service.key]?.endpoints ?? []
        return endpoints.compactMap { w in w.workloadIps.first { $0.isIPv4 == v4 } }
    }
}
