import HBONECore
import HBONEIdentity
import HBONEConfig

/// Waypoints (istio.workload.GatewayAddress on a service or workload), resolved as ztunnel does.
extension ProxyState {
    /// The tunnel goes to the waypoint's HBONE port, which must present the waypoint workload's
    /// identity (or one its service lists); the CONNECT names the destination the client
    /// addressed, untranslated, for the waypoint to route. A waypoint that cannot be found refuses
    /// the connection: going around it would skip the L7 policies it enforces.
    func through(_ waypoint: GatewayAddress, target: SocketAddress, service: Service?, hashKey: Int, from source: IPAddress?) -> Destination {
        // A pod addressed by its IP is never sent across networks, as in ztunnel: its waypoint is
        // picked here only.
        guard let (w, ip, serviceSANs) = waypointEndpoint(waypoint, hashKey: hashKey, from: source, localOnly: service == nil) else {
            let of = service.map { "service \($0.key)" } ?? "workload \(target.ip)"
            return Destination(route: .unreachable("waypoint \(waypoint) of \(of) \(missing(waypoint, forService: service != nil))"),
                               workload: nil, service: service)
        }
        // Picked on another network (for a service): through its gateway.
        guard let ip else {
            guard let service, let waypointService = self.waypointService(named: waypoint) else {
                Bug.report("waypoint \(waypoint): endpoint \(w.uid) on network \"\(w.network)\" picked for a pod")
                return Destination(route: .unreachable("waypoint \(waypoint) is on network \"\(w.network)\""), workload: nil, service: service)
            }
            return throughNetworkGateway(toWaypoint: waypointService, endpoint: w, of: service, port: target.port, hashKey: hashKey)
        }
        let expected = PeerIdentities(w.identity, adding: serviceSANs)
        return Destination(route: .hbone(proxy: SocketAddress(ip: ip, port: waypoint.hboneMtlsPort), authority: target, expected: expected),
                           workload: w, service: service)
    }

    /// The waypoint workload to dial, the address to dial it at (nil for one on another network),
    /// and the SANs its service adds. Named by address: the workload there (dialled at that very
    /// address), or an endpoint of the service whose VIP it is (on this network or another); named
    /// by hostname: an endpoint of that namespace's service.
    func waypointEndpoint(_ waypoint: GatewayAddress, hashKey: Int, from source: IPAddress?, localOnly: Bool) -> (Workload, IPAddress?, [SPIFFEID])? {
        if case let .address(network, ip) = waypoint.destination, network == settings.network, let w = workloadsByIP[ip] { return (w, ip, []) }
        guard let service = waypointService(named: waypoint), let w = endpoint(of: service, hashKey: hashKey, from: source, localOnly: localOnly) else { return nil }
        guard w.network == settings.network else { return (w, nil, service.subjectAltNames) }
        // An endpoint known by hostname only is not dialled as a waypoint: none is found.
        guard let ip = w.workloadIps.first else { return nil }
        return (w, ip, service.subjectAltNames)
    }

    /// The waypoint a connection to `s` goes through (ztunnel's `fetch_service_waypoint`): one of
    /// its weighted waypoints, by weight, or else its `waypoint` (also when every weight is 0).
    func waypoint(of s: Service, hashKey: Int) -> GatewayAddress? {
        guard !s.weightedWaypoints.isEmpty else { return s.waypoint }
        let total = s.weightedWaypoints.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
        guard total > 0 else { return s.waypoint }
        // The same key then picks the waypoint's endpoint: spread over 64 bits first, or a plain
        // modulo of both would tie each waypoint to some of its endpoints.
        var r = EndpointSet.mix(UInt64(bitPattern: Int64(hashKey))) % total
        for w in s.weightedWaypoints {
            if r < UInt64(w.weight) { return w.destination }
            r -= UInt64(w.weight)
        }
        Bug.report("service \(s.key): weighted waypoint pick ran past the total weight \(total)")
        return s.waypoint
    }

    /// The service a waypoint names: as `service(named:)`, or by its VIP on another network, as
    /// ztunnel finds a waypoint by network and address (its endpoints there are reached through
    /// that network's gateway, for traffic to a service).
    func waypointService(named waypoint: GatewayAddress) -> Service? {
        if let s = service(named: waypoint) { return s }
        guard case let .address(network, ip) = waypoint.destination, network != settings.network else { return nil }
        return mesh.remoteServicesByVIP[NetworkAddress(network: network, ip: ip)]
    }

    /// The service a waypoint or a network gateway names: by hostname, or by its VIP on this network.
    func service(named gateway: GatewayAddress) -> Service? {
        switch gateway.destination {
        case let .address(network, ip): network == settings.network ? servicesByVIP[ip] : nil
        case let .hostname(namespace, hostname): servicesByKey["\(namespace)/\(hostname)"]
        }
    }

    /// Why neither the waypoint nor a gateway to it was found: it is on another network (named by
    /// an address there, or its endpoints all elsewhere), it has no endpoint that may be picked, or
    /// it is not known.
    private func missing(_ waypoint: GatewayAddress, forService: Bool) -> String {
        guard let service = waypointService(named: waypoint) else {
            if case let .address(network, _) = waypoint.destination, network != settings.network {
                return "is on network \"\(network)\", where no service has that VIP"
            }
            return "not found"
        }
        if !forService, let here = localEndpointSets[service.key], here.isEmpty, here.unhealthy == 0 {
            return "is on other networks only (reached through a gateway only for traffic addressed to a service)"
        }
        return noEndpoint(service) ?? "not found"
    }

    /// Whether the connection comes from one of the waypoint's own workloads (ztunnel's
    /// `check_from_waypoint`): the waypoint sending on to the workload it stands in front of must
    /// not be sent back to itself.
    func isWaypoint(_ waypoint: GatewayAddress, source: IPAddress?) -> Bool {
        guard let source, let w = workloadsByIP[source] else { return false }
        return isWaypoint(waypoint, workload: w)
    }

    /// Whether the local workload `w` is the waypoint of what is at `target` (a workload's address,
    /// or a service's VIP as the client at `source` sees it): a waypoint enrolled in the mesh takes
    /// tunnels that name the destinations it stands in front of (ztunnel's "waypoint sandwich").
    func isWaypoint(_ w: Workload, of target: IPAddress, from source: IPAddress) -> Bool {
        let waypoints: [GatewayAddress]
        if let there = workloadsByIP[target] {
            waypoints = there.waypoint.map { [$0] } ?? []
        } else if let s = service(atVIP: target, from: source) {
            waypoints = (s.waypoint.map { [$0] } ?? []) + s.weightedWaypoints.map(\.destination)
        } else {
            return false
        }
        return waypoints.contains { isWaypoint($0, workload: w) }
    }

    private func isWaypoint(_ waypoint: GatewayAddress, workload w: Workload) -> Bool {
        switch waypoint.destination {
        case let .address(network, ip):
            guard network == settings.network else { return false }
            if let there = workloadsByIP[ip] { return there.uid == w.uid }
            guard let s = servicesByVIP[ip] else { return false }
            return w.services[s.key] != nil
        case let .hostname(namespace, hostname):
            return w.services["\(namespace)/\(hostname)"] != nil
        }
    }
}
