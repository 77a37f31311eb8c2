import HBONECore
import HBONEIdentity

/// What authorization may judge about one connection at L4.
public struct ConnectionFacts: Sendable, Hashable {
    /// The peer's verified identity; nil on plaintext (identity-less) connections.
    public var source: SPIFFEID?
    public var sourceIP: IPAddress
    public var destinationIP: IPAddress
    /// The workload's target port.
    public var destinationPort: UInt16

    /// The principal (`td/ns/x/sa/y`), for the reference evaluator (`Policy.matches`); the
    /// compiled one reads it in place (`SPIFFEID.withPrincipalBytes`).
    var principal: String? { source?.principal }

    public init(source: SPIFFEID?, sourceIP: IPAddress, destinationIP: IPAddress, destinationPort: UInt16) {
        self.source = source
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.destinationPort = destinationPort
    }

    var sourceNamespace: String? { source?.namespace }
}

/// The destination workload a decision is for: which policies apply depends on it.
public struct PolicyTarget: Sendable, Hashable {
    public var namespace: String
    public var labels: [String: String]
    /// `"<namespace>/<name>"` of the policies that name this workload (from xDS).
    public var policies: [String]

    public init(namespace: String, labels: [String: String], policies: [String] = []) {
        self.namespace = namespace
        self.labels = labels
        self.policies = policies
    }
}
