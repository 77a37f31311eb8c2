/// How a service's endpoints are picked, as istiod sends it (`istio.workload.LoadBalancing`, from
/// Kubernetes `trafficDistribution`, Istio's `networking.istio.io/traffic-distribution` and
/// `publishNotReadyAddresses`). The names are ztunnel's local-config spellings.
public struct LoadBalancer: Sendable, Hashable {
    /// What an endpoint shares with the client for a preference to count as met.
    public enum Scope: String, Sendable, Hashable, CaseIterable {
        case region = "Region", zone = "Zone", subzone = "Subzone", node = "Node", cluster = "Cluster", network = "Network"
    }

    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// Preferences are not looked at: any endpoint, weighted by capacity.
        case standard = "Standard"
        /// Only endpoints that meet every preference; none: no route.
        case strict = "Strict"
        /// The endpoints that meet the longest run of preferences, in order (PreferClose).
        case failover = "Failover"
        /// No endpoint is picked: the connection goes to the address the client dialled.
        case passthrough = "Passthrough"
    }

    public enum HealthPolicy: String, Sendable, Hashable, CaseIterable {
        case onlyHealthy = "OnlyHealthy"
        /// Unhealthy endpoints are picked too (a service that publishes not-ready addresses).
        case allowAll = "AllowAll"
    }

    public var routingPreferences: [Scope]
    public var mode: Mode
    public var healthPolicy: HealthPolicy

    public init(routingPreferences: [Scope] = [], mode: Mode = .standard, healthPolicy: HealthPolicy = .onlyHealthy) {
        self.routingPreferences = routingPreferences
        self.mode = mode
        self.healthPolicy = healthPolicy
    }
}
