import HBONECore
import HBONEIdentity
import HBONEConfig

/// Where an outbound connection goes and how.
public struct Destination: Sendable, Equatable {
    public enum Route: Sendable, Equatable {
        /// Through HBONE to `proxy` (the destination node's :15008), CONNECT `authority`.
        case hbone(proxy: SocketAddress, authority: SocketAddress, expected: Set<SPIFFEID>)
        /// Plain TCP straight to the address.
        case direct(SocketAddress)
    }

    public var route: Route
    public var workload: Workload?
    public var service: Service?
}

extension ProxyState {
    /// Resolves an original destination (workload IP or service VIP) to a route.
    /// Service VIPs pick an endpoint among workloads that list the service, and translate the port.
    public func resolve(_ dst: SocketAddress, hashKey: Int = 0) -> Destination? {
        if let w = workloadsByIP[dst.ip] {
            return route(to: w, ip: dst.ip, port: dst.port, service: nil)
        }
        if let s = servicesByVIP[dst.ip] {
            return resolve(service: s, port: dst.port, hashKey: hashKey)
        }
        // Unknown to the mesh: passthrough.
        return Destination(route: .direct(dst), workload: nil, service: nil)
    }

    public func resolve(hostname: String, port: UInt16, hashKey: Int = 0) -> Destination? {
        guard let s = servicesByHostname[hostname] else { return nil }
        return resolve(service: s, port: port, hashKey: hashKey)
    }

    func resolve(service s: Service, port: UInt16, hashKey: Int) -> Destination? {
        let key = s.key
        guard let endpoints = endpointsByService[key], !endpoints.isEmpty else { return nil }
        let w = endpoints[Int(hashKey.magnitude % UInt(endpoints.count))]
        var target = port
        if let t = w.services[key]?[port], t != 0 { target = t } else if let t = s.ports[port], t != 0 { target = t }
        return route(to: w, ip: w.workloadIps[0], port: target, service: s)
    }

    private func route(to w: Workload, ip: IPAddress, port: UInt16, service: Service?) -> Destination {
        let dst = SocketAddress(ip: ip, port: port)
        switch w.protocol {
        case .hbone:
            var expected: Set<SPIFFEID> = [w.identity]
            if let service { expected.formUnion(service.subjectAltNames) }
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
