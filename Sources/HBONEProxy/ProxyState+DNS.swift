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
    ///
    /// The names tried, in ztunnel's order, each with its wildcards: the name as asked; its
    /// Kubernetes expansions; then, for each of the client's search domains (`<ns>.svc.<domain>`,
    /// `svc.<domain>`, `<domain>`: a pod's resolv.conf, which the proxy cannot read, is assumed to be
    /// Kubernetes') the name without it and that name's expansions. Built one at a time, so the
    /// usual question (a full name) costs one look-up.
    public func resolveDNS(_ name: DNSName, type: UInt16, client: Workload?, rotate: Int = 0) -> DNSResolution {
        guard type == DNSType.a || type == DNSType.aaaa, let requested = name.key, !requested.isEmpty else { return .forward }
        let domain = settings.dns.clusterDomain
        let namespace = client?.namespace
        var tried: [String] = []
        func attempt(_ alias: String, stripped: Substring?) -> DNSResolution? {
            guard !tried.contains(alias) else { return nil }
            tried.append(alias)
            guard let (service, wildcard) = dnsService(matching: alias, domain: domain, namespace: namespace) else { return nil }
            return .answer(dnsRecords(service, asked: name, type: type, client: client,
                                      cnameTo: wildcard ? nil : stripped.map(String.init), rotate: rotate))
        }
        func withExpansions(_ alias: Substring, stripped: Substring?) -> DNSResolution? {
            if let r = attempt(String(alias), stripped: stripped) { return r }
            for e in kubernetesNames(alias, domain: domain, namespace: namespace) {
                if let r = attempt(e, stripped: stripped) { return r }
            }
            return nil
        }
        let whole = Substring(requested)
        if let r = withExpansions(whole, stripped: nil) { return r }
        let underDomain = Self.dropSuffix(whole, domain)
        let underSvc = underDomain.flatMap { Self.dropSuffix($0, "svc") }
        let underNamespace = namespace.flatMap { ns in underSvc.flatMap { Self.dropSuffix($0, ns) } }
        for stripped in [underNamespace, underSvc, underDomain] {
            if let stripped, let r = withExpansions(stripped, stripped: stripped) { return r }
        }
        return .forward
    }

    /// `name` less `.suffix`, when it ends so and something is left.
    static func dropSuffix(_ name: Substring, _ suffix: String) -> Substring? {
        let n = name.utf8, s = suffix.utf8
        guard n.count > s.count + 1, n.suffix(s.count).elementsEqual(s) else { return nil }
        let dot = n.index(n.endIndex, offsetBy: -(s.count + 1))
        guard n[dot] == UInt8(ascii: ".") else { return nil }
        return Substring(n[n.startIndex..<dot])
    }

    /// A short name's Kubernetes forms: `svc` and `pod.subdomain` in the client's namespace,
    /// `svc.ns`, `svc.ns.svc`, `pod.subdomain.ns`, `pod.subdomain.ns.svc`, each with the domain.
    private func kubernetesNames(_ name: Substring, domain: String, namespace: String?) -> [String] {
        let labels = name.utf8.reduce(1) { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) }
        guard labels <= 4 else { return [] }
        let inNamespace = namespace.map { "\(name).\($0).svc.\(domain)" }
        let endsInSvc = name.hasSuffix(".svc")
        switch labels {
        case 1: return inNamespace.map { [$0] } ?? []
        case 2: return ["\(name).svc.\(domain)"] + (inNamespace.map { [$0] } ?? [])
        case 3: return (endsInSvc ? ["\(name).\(domain)"] : []) + ["\(name).svc.\(domain)"]
        default: return endsInSvc ? ["\(name).\(domain)"] : []
        }
    }

    /// The service `alias` names, or else its closest wildcard (`*.example.com`, then `*.com`), and
    /// whether it was a wildcard.
    private func dnsService(matching alias: String, domain: String, namespace: String?) -> (Service, Bool)? {
        if let s = dnsService(alias, domain: domain, namespace: namespace) { return (s, false) }
        guard !wildcardHostnameSuffixes.isEmpty else { return nil }
        var rest = Substring(alias)
        while let dot = rest.firstIndex(of: ".") {
            rest = rest[rest.index(after: dot)...]
            if wildcardHostnameSuffixes.contains(String(rest)), let s = dnsService("*." + rest, domain: domain, namespace: namespace) {
                return (s, true)
            }
        }
        return nil
    }

    /// The service `hostname` names for this client: one with a VIP, or a Kubernetes headless
    /// service (its endpoints' addresses are the answer); others (a ServiceEntry without addresses)
    /// are left to upstream DNS. Then visibility and the client's namespace, as for connections.
    private func dnsService(_ hostname: String, domain: String, namespace: String?) -> Service? {
        func answerable(_ s: Service) -> Bool {
            !s.addresses.isEmpty || (s.hostname.hasSuffix(domain) && s.hostname.dropLast(domain.utf8.count).hasSuffix(".svc."))
        }
        if let several = sharedServicesByHostname[hostname] {
            return Self.bestService(among: several.filter(answerable), forNamespace: namespace, preferring: settings.dns.preferredServiceNamespace)
        }
        guard let one = servicesByHostname[hostname], answerable(one), one.isVisible(to: namespace) else { return nil }
        return one
    }

    /// The answer's records: a CNAME to the shorter name when the service was found by taking a
    /// search domain off (as ztunnel answers), then the addresses, from `rotate` on.
    private func dnsRecords(_ service: Service, asked name: DNSName, type: UInt16, client: Workload?,
                            cnameTo stripped: String?, rotate: Int) -> [DNSRecord] {
        // A single-stack service has no address of the other family, whatever its pods have
        // (ztunnel's rule); with IPv6 off, no service has an IPv6 one.
        switch (service.ipFamilies, type) {
        case (.ipv4?, DNSType.aaaa), (.ipv6?, DNSType.a): return []
        case (_, DNSType.aaaa) where !settings.ipv6Enabled: return []
        default: break
        }
        let addresses = dnsAddresses(of: service, type: type, network: client?.network ?? settings.network)
        guard !addresses.isEmpty else { return [] }
        var records: [DNSRecord] = []
        records.reserveCapacity(addresses.count + 1)
        var ipName = name
        if let stripped, let target = DNSName(stripped) {
            records.append(DNSRecord(name: name, ttl: Self.dnsTTL, data: .cname(target)))
            ipName = target
        }
        let start = Int(rotate.magnitude % UInt(addresses.count))
        for i in 0..<addresses.count {
            let ip = addresses[(start + i) % addresses.count]
            switch ip {
            case let .v4(v): records.append(DNSRecord(name: ipName, ttl: Self.dnsTTL, data: .a(v)))
            case .v6: records.append(DNSRecord(name: ipName, ttl: Self.dnsTTL, data: .aaaa(withUnsafeBytes(of: ip.in6) { Array($0) })))
            }
        }
        return records
    }

    /// VIPs of the type asked on the client's network; a headless service's endpoints (healthy,
    /// unless the service allows all), each endpoint's first address of that type.
    private func dnsAddresses(of service: Service, type: UInt16, network: String) -> [IPAddress] {
        let v4 = type == DNSType.a
        if !service.addresses.isEmpty {
            return service.addresses.compactMap { $0.network == network && $0.ip.isIPv4 == v4 ? $0.ip : nil }
        }
        let endpoints = endpointSets[service.key]?.endpoints ?? []
        return endpoints.compactMap { w in w.workloadIps.first { $0.isIPv4 == v4 } }
    }
}
