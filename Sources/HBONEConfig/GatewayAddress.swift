import HBONECore

/// Where a waypoint or a network gateway is reached (istio.workload.GatewayAddress): an address on a
/// network, or a service by namespace and hostname, and its HBONE port. Kept from xDS and shown in
/// the config dump; traffic is not yet steered through either.
public struct GatewayAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Destination: Sendable, Hashable {
        case address(network: String, ip: IPAddress)
        case hostname(namespace: String, hostname: String)
    }

    public var destination: Destination
    /// 15008 when istiod leaves it 0.
    public var hboneMtlsPort: UInt16

    public init(destination: Destination, hboneMtlsPort: UInt16) {
        self.destination = destination
        self.hboneMtlsPort = hboneMtlsPort
    }

    public var description: String {
        switch destination {
        case let .address(network, ip):
            (network.isEmpty ? "" : "\(network)/") + SocketAddress(ip: ip, port: hboneMtlsPort).description
        case let .hostname(namespace, hostname): "\(namespace)/\(hostname):\(hboneMtlsPort)"
        }
    }
}
