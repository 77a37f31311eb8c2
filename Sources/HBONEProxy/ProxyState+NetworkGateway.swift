import HBONECore
import HBONEIdentity
import HBONEConfig

extension ProxyState {
    /// A service's endpoint on another network (istiod's stand-in for that network's endpoints),
    /// through the network gateway it names, as ztunnel does. A gateway that cannot be used is a
    /// refusal that says why: nothing is dialled on a guess.
    func throughNetworkGateway(_ s: Service, endpoint: Workload, port: UInt16, hashKey: Int) -> Destination {
        throughNetworkGateway(endpointOf: s, endpoint, target: s, port: port, hashKey: hashKey)
    }

    /// The same for a service whose waypoint was picked on another network: the gateway of that
    /// waypoint endpoint; the CONNECTs still name the service the client addressed, and the inner
    /// tunnel must reach the waypoint (its service's names), as in ztunnel.
    func throughNetworkGateway(toWaypoint waypoint: Service, endpoint: Workload, of s: Service, port: UInt16, hashKey: Int) -> Destination {
        throughNetworkGateway(endpointOf: waypoint, endpoint, target: s, port: port, hashKey: hashKey)
    }

    /// `endpointOf`: the service whose endpoint on another network is reached (the addressed
    /// service, or its waypoint's); its subject alt names verify the endpoint behind the gateway.
    private func throughNetworkGateway(endpointOf remote: Service, _ endpoint: Workload, target s: Service, port: UInt16, hashKey: Int) -> Destination {
        guard let gateway = endpoint.networkGateway else {
            Bug.report("service \(remote.key): endpoint \(endpoint.uid) on network \"\(endpoint.network)\" picked, but it names no gateway")
            return Destination(route: .unreachable("service \(remote.key): its endpoint on network \"\(endpoint.network)\" names no gateway"), workload: nil, service: s)
        }
        let what = remote.key == s.key ? "service \(s.key)" : "waypoint \(remote.key) of service \(s.key)"
        func refuse(_ why: String) -> Destination {
            Destination(route: .unreachable("\(what) on network \"\(endpoint.network)\": \(why)"), workload: nil, service: s)
        }
        // Both CONNECTs carry the name, and the gateway routes on it.
        guard s.hasDNSHostname else { return refuse("its hostname is not a DNS name, so it cannot be named in a CONNECT") }
        // The endpoint behind the gateway is only known by the service's names: without them the
        // inner tunnel could not be verified (ztunnel's handshake would fail the same way).
        guard !remote.subjectAltNames.isEmpty else {
            return refuse("it lists no subjectAltNames, so its endpoints behind network gateway \(gateway) cannot be verified")
        }
        guard let (address, identities, workload) = gatewayPeer(gateway, hashKey: hashKey) else {
            return refuse("network gateway \(gateway) is not a known workload or service")
        }
        let route = GatewayRoute(gateway: address, gatewayIdentities: identities, target: "\(s.hostname):\(port)",
                                 identities: Set(remote.subjectAltNames))
        // As ztunnel reports it: the gateway is the workload the connection was made to.
        return Destination(route: .throughGateway(route), workload: workload, service: s)
    }

    /// Where a network gateway is dialled and who it may be: a service (by hostname, or by a VIP on
    /// this network, as ztunnel looks first) through one of its endpoints here, or the workload at
    /// that address on its network (istiod's gateway workload).
    private func gatewayPeer(_ gateway: GatewayAddress, hashKey: Int) -> (SocketAddress, Set<SPIFFEID>, Workload)? {
        if let service = service(named: gateway) {
            // A gateway is dialled on this network: one reached through another gateway is no use;
            // nor one known by hostname only (a gateway is dialled by address).
            guard let w = endpoint(of: service, hashKey: hashKey, from: nil, localOnly: true), let ip = w.workloadIps.first else { return nil }
            return (SocketAddress(ip: ip, port: gateway.hboneMtlsPort), Set([w.identity]).union(service.subjectAltNames), w)
        }
        guard case let .address(network, ip) = gateway.destination, let w = networkGateways[NetworkAddress(network: network, ip: ip)] else { return nil }
        return (SocketAddress(ip: ip, port: gateway.hboneMtlsPort), [w.identity], w)
    }
}
