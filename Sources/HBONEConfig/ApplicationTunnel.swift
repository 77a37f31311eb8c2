/// A workload that takes tunnelled traffic itself (ztunnel's `application_tunnel`): typically a
/// waypoint enrolled in the mesh, which needs to know who the client was and where it was going
/// after the proxy has ended the HBONE tunnel in front of it.
public struct ApplicationTunnel: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The tunnel's bytes as they came.
        case none = "NONE"
        /// A PROXY protocol v2 header first: the client's address, the address the tunnel named,
        /// and the client's SPIFFE identity (TLV 0xD0).
        case proxy = "PROXY"
    }

    public var `protocol`: Kind
    /// Where the tunnels are delivered (ztunnel's example: 15088); nil: each tunnel's own port.
    public var port: UInt16?

    public init(protocol: Kind, port: UInt16? = nil) {
        self.protocol = `protocol`
        self.port = port
    }
}
