import HBONECore

/// Where a waypoint or a network gateway is reached (istio.workload.GatewayAddress): an address on a
/// network, or a service by namespace and hostname, and its HBONE port. Traffic to a service or a
/// workload with a waypoint goes through it; network gateways are kept and shown, not used.
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

    /// The destination as ztunnel's config files and dumps write it: `network/ip` (the network may
    /// be empty) or `namespace/hostname`.
    public var destinationText: String {
        switch destination {
        case let .address(network, ip): "\(network)/\(ip)"
        case let .hostname(namespace, hostname): "\(namespace)/\(hostname)"
        }
    }

    /// Reads `destinationText`: an address when what follows the first `/` is an IP (ztunnel tries
    /// that first too), else a namespaced hostname. Nil when there is no `/` or a side is empty
    /// (the network side of an address may be).
    public init?(destinationText text: String, hboneMtlsPort: UInt16) {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let head = String(text[..<slash]), tail = String(text[text.index(after: slash)...])
        if let ip = IPAddress(tail) {
            self.init(destination: .address(network: head, ip: ip), hboneMtlsPort: hboneMtlsPort)
        } else {
            guard !head.isEmpty, !tail.isEmpty, !tail.contains("/") else { return nil }
            self.init(destination: .hostname(namespace: head, hostname: tail), hboneMtlsPort: hboneMtlsPort)
        }
    }

    public var description: String {
        switch destination {
        case let .address(network, ip):
            (network.isEmpty ? "" : "\(network)/") + SocketAddress(ip: ip, port: hboneMtlsPort).description
        case let .hostname(namespace, hostname): "\(namespace)/\(hostname):\(hboneMtlsPort)"
        }
    }
}
