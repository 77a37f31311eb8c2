import HBONECore
import HBONEIdentity
import HBONEConfig

/// Where an outbound connection goes and how.
public struct Destination: Sendable, Equatable {
    public enum Route: Sendable, Equatable {
        /// Through HBONE to `proxy` (the destination node's :15008), CONNECT `authority`.
        case hbone(proxy: SocketAddress, authority: SocketAddress, expected: PeerIdentities)
        /// Through another network's east-west gateway (double HBONE).
        case throughGateway(GatewayRoute)
        /// Plain TCP straight to the address.
        case direct(SocketAddress)
        /// `workload` is known by its hostname only (a ServiceEntry endpoint with `resolution:
        /// DNS`): looked up when the connection is made (`HostnameResolver`), then reached at an
        /// address found, on `port`, as `ProxyState.route(to:ip:port:service:)` says.
        /// `preferIPv6`: the original destination's family, asked first.
        case lookup(hostname: String, port: UInt16, preferIPv6: Bool)
        /// Known to the mesh but refused, for this reason: its waypoint cannot be found, and going
        /// around it would skip the policies it enforces; or it is on another network only.
        case unreachable(String)
    }

    public var route: Route
    /// The workload the tunnel is made to: the destination's own, or its waypoint's (as ztunnel
    /// reports the waypoint as the destination workload).
    public var workload: Workload?
    /// The service the client addressed, also when its waypoint is dialled.
    public var service: Service?
}

extension ProxyState {
    /// Resolves an original destination (workload IP or service VIP) to a route.
    /// Service VIPs pick an endpoint among workloads that list the service, and translate the port.
    /// A service or workload with a waypoint is reached through it, as ztunnel does: a service's
    /// waypoint always (the VIP was addressed), a workload's unless `source` is that waypoint
    /// sending on what it already handled. `source` also ranks endpoints by locality.
    public func resolve(_ dst: SocketAddress, hashKey: Int = 0, from source: IPAddress? = nil) -> Destination? {
        if let w = workloadsByIP[dst.ip] {
            if let waypoint = w.waypoint, !isWaypoint(waypoint, source: source) {
                return through(waypoint, target: dst, service: nil, hashKey: hashKey, from: source)
            }
            return route(to: w, ip: dst.ip, port: dst.port, service: nil)
        }
        if let s = service(atVIP: dst.ip, from: source) {
            if let waypoint = waypoint(of: s, hashKey: hashKey) { return through(waypoint, target: dst, service: s, hashKey: hashKey, from: source) }
            // The client picked its destination itself (a headless-like service): no endpoint is.
            if s.loadBalancer?.mode == .passthrough { return Destination(route: .direct(dst), workload: nil, service: s) }
            return resolve(service: s, port: dst.port, hashKey: hashKey, from: source, preferIPv6: !dst.ip.isIPv4)
        }
        // Unknown to the mesh (or a service the client's namespace may not see): passthrough.
        return Destination(route: .direct(dst), workload: nil, service: nil)
    }

    /// A mesh hostname (SOCKS5) resolves as its service's first VIP would, so a waypoint sees the
    /// address a client that looked the name up in DNS would have dialled.
    public func resolve(hostname: String, port: UInt16, hashKey: Int = 0, from source: IPAddress? = nil) -> Destination? {
        guard let s = service(atHostname: hostname, from: source) else { return nil }
        let waypoint = waypoint(of: s, hashKey: hashKey)
        if waypoint != nil || s.loadBalancer?.mode == .passthrough {
            guard let vip = s.vip(on: settings.network) else {
                let why = waypoint.map { "has waypoint \($0) but no VIP to name to it" } ?? "is passthrough but has no VIP to pass through to"
                return Destination(route: .unreachable("service \(s.key) \(why)"), workload: nil, service: s)
            }
            let target = SocketAddress(ip: vip, port: port)
            guard let waypoint else { return Destination(route: .direct(target), workload: nil, service: s) }
            return through(waypoint, target: target, service: s, hashKey: hashKey, from: source)
        }
        return resolve(service: s, port: port, hashKey: hashKey, from: source)
    }

    /// `preferIPv6`: the family of the address the client dialled (a dual-stack endpoint is reached
    /// in that family when it has it, as ztunnel does).
    func resolve(service s: Service, port: UInt16, hashKey: Int, from source: IPAddress?, preferIPv6: Bool = false) -> Destination? {
        let key = s.key
        guard let w = endpoint(of: s, hashKey: hashKey, from: source) else {
            guard let why = noEndpoint(s) else { return nil }
            return Destination(route: .unreachable("service \(key) \(why)"), workload: nil, service: s)
        }
        if w.network != settings.network { return throughNetworkGateway(s, endpoint: w, port: port, hashKey: hashKey) }
        var target = port
        if let t = w.services[key]?[port], t != 0 { target = t } else if let t = s.ports[port], t != 0 { target = t }
        guard let ip = w.workloadIps.first(where: { $0.isIPv4 != preferIPv6 }) ?? w.workloadIps.first else {
            return Destination(route: .lookup(hostname: w.hostname, port: target, preferIPv6: preferIPv6), workload: w, service: s)
        }
        return route(to: w, ip: ip, port: target, service: s)
    }

    /// Why `s` has no endpoint to pick, when there is more to say than that it has none: they are
    /// all unhealthy, none meets its Strict preferences, or they are all on other networks and
    /// none names a network gateway.
    func noEndpoint(_ s: Service) -> String? {
        if let set = endpointSets[s.key] {
            if set.isEmpty {
                return set.unhealthy > 0 ? "has no healthy endpoint (\(set.unhealthy) unhealthy)" : onOtherNetworksOnly(s)
            }
            if set.balancer.mode == .strict {
                return "has no endpoint that meets all its routing preferences (Strict: \(set.balancer.routingPreferences.map(\.rawValue).joined(separator: ", ")))"
            }
            return "has no endpoint with a capacity above 0"
        }
        return onOtherNetworksOnly(s)
    }

    /// Why `s` has no endpoint here when its endpoints are all on other networks and none of them
    /// names a network gateway; nil otherwise.
    func onOtherNetworksOnly(_ s: Service) -> String? {
        servicesWithEndpointsElsewhere.contains(s.key) ? "has endpoints on other networks only, and none names a network gateway" : nil
    }

    /// One of the service's endpoints, by its load balancing (`hashKey`: any value, even Int.min,
    /// whose abs() would trap): on this network (with an address), or, unless `localOnly`, on
    /// another one behind a gateway; nil when none may be picked.
    func endpoint(of s: Service, hashKey: Int, from source: IPAddress?, localOnly: Bool = false) -> Workload? {
        let set = localOnly ? localEndpointSets[s.key] ?? endpointSets[s.key] : endpointSets[s.key]
        return set?.pick(for: client(source), hashKey: hashKey)
    }

    /// What ranks endpoints for a connection from `source`: its workload, or else this proxy's
    /// node and network (a client ztunnel would not know; its locality is unknown).
    func client(_ source: IPAddress?) -> EndpointSet.Client {
        if let source, let w = workloadsByIP[source] { return EndpointSet.Client(w) }
        return EndpointSet.Client(network: settings.network, node: settings.node)
    }

    /// How `w` is reached at `ip`: through HBONE to its node's proxy, or plain TCP.
    func route(to w: Workload, ip: IPAddress, port: UInt16, service: Service?) -> Destination {
        let dst = SocketAddress(ip: ip, port: port)
        switch w.protocol {
        case .hbone:
            let expected = PeerIdentities(w.identity, adding: service?.subjectAltNames ?? [])
            return Destination(route: .hbone(proxy: SocketAddress(ip: ip, port: settings.listen.inboundPort), authority: dst, expected: expected),
                               workload: w, service: service)
        case .tcp:
            return Destination(route: .direct(dst), workload: w, service: service)
        }
    }

    /// Whether a connection to `dst` would reach this proxy: one of its ports on an address that is
    /// this host's (loopback, unspecified, an interface address, a listen address) or a local
    /// workload's (captured, so it comes back to us). `dst` is in normal form, so `::ffff:127.0.0.1`
    /// and `0.0.0.0` are caught like `127.0.0.1`.
    public func isProxyItself(_ dst: SocketAddress) -> Bool {
        guard ownPorts.contains(dst.port) else { return false }
        let ip = dst.ip
        return ip.isLoopback || ip.isUnspecified || localWorkloadsByIP[ip] != nil || ownAddresses.contains(ip)
    }
}
