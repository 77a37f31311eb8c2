import HBONECore
import HBONEIdentity

/// How a destination receives mesh traffic: tunnelled (HBONE) or as plain TCP.
public enum InboundProtocol: String, Sendable, Hashable { case hbone = "HBONE", tcp = "TCP" }

/// A workload as ztunnel's LocalConfig describes it (same keys).
public struct Workload: Sendable, Hashable {
    public var uid: String
    public var name: String
    public var namespace: String
    public var serviceAccount: String
    public var trustDomain: String
    public var workloadIps: [IPAddress]
    public var `protocol`: InboundProtocol
    public var node: String
    public var clusterId: String
    public var workloadName: String
    public var canonicalName: String
    public var canonicalRevision: String
    public var labels: [String: String]
    /// `"<namespace>/<hostname>"` → service port → target port.
    public var services: [String: [UInt16: UInt16]]
    public var identity: SPIFFEID
}

/// A service: a hostname and VIPs in front of workloads.
public struct Service: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var hostname: String
    public var vips: [IPAddress]
    /// Service port → target port (0 means "same as the service port").
    public var ports: [UInt16: UInt16]
    /// Identities a client should accept from this service's endpoints besides the endpoint's own.
    public var subjectAltNames: [SPIFFEID]

    /// The key workloads use in their `services` map.
    public var key: String { "\(namespace)/\(hostname)" }
}
