import HBONECore
import HBONEIdentity

/// Double HBONE (ztunnel's DOUBLEHBONE): how a service whose endpoints are on another network is
/// reached, through that network's east-west gateway. The outer tunnel ends at the gateway; the
/// inner one, mTLS of its own from the client's workload to the endpoint, passes through it as
/// bytes to an endpoint the gateway picks. Both CONNECTs name the service (`hostname:port`), so
/// the gateway routes without opening the inner tunnel.
public struct GatewayRoute: Sendable, Equatable {
    /// The gateway's HBONE address, and the identities it may present (the outer tunnel's peer).
    public var gateway: SocketAddress
    public var gatewayIdentities: Set<SPIFFEID>
    /// `hostname:port`: the service and the port the client addressed.
    public var target: String
    /// The identities the endpoint behind the gateway may present (the inner tunnel's peer): the
    /// service's subject alt names, as istiod lists them for every cluster's endpoints.
    public var identities: Set<SPIFFEID>

    public init(gateway: SocketAddress, gatewayIdentities: Set<SPIFFEID>, target: String, identities: Set<SPIFFEID>) {
        self.gateway = gateway
        self.gatewayIdentities = gatewayIdentities
        self.target = target
        self.identities = identities
    }
}
