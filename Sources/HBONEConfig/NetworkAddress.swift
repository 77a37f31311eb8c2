import HBONECore

/// An IP on one network (ztunnel's NetworkAddress): networks may reuse each other's addresses, so
/// an IP alone does not say which pod or VIP it is. Written `network/ip` as ztunnel writes it (the
/// default network is empty: `/10.96.0.1`).
public struct NetworkAddress: Sendable, Hashable, CustomStringConvertible {
    public var network: String
    public var ip: IPAddress

    public init(network: String, ip: IPAddress) {
        self.network = network
        self.ip = ip
    }

    public var description: String { "\(network)/\(ip)" }
}

/// An address block on one network (ztunnel's NetworkCidr): a ServiceEntry's CIDR VIP, which every
/// address inside it reaches. Written `network/ip/length`.
public struct NetworkCIDR: Sendable, Hashable, CustomStringConvertible {
    public var network: String
    public var cidr: CIDR

    public init(network: String, cidr: CIDR) {
        self.network = network
        self.cidr = cidr
    }

    public var description: String { "\(network)/\(cidr)" }
}
