import HBONECore
import HBONEDNS
import HBONEIdentity

/// How a destination receives mesh traffic: tunnelled (HBONE) or as plain TCP.
public enum InboundProtocol: String, Sendable, Hashable { case hbone = "HBONE", tcp = "TCP" }

/// Where a workload runs, as Kubernetes topology labels say (`topology.kubernetes.io/region`, …).
public struct Locality: Sendable, Hashable {
    public var region: String
    public var zone: String
    public var subzone: String

    public init(region: String = "", zone: String = "", subzone: String = "") {
        self.region = region
        self.zone = zone
        self.subzone = subzone
    }
}

/// istiod marks a pod that is not ready, or is terminating, unhealthy: services send it no new
/// connections (unless their health policy allows all), while its own address still reaches it.
public enum HealthStatus: String, Sendable, Hashable, CaseIterable {
    case healthy = "Healthy", unhealthy = "Unhealthy"
}

/// A workload as ztunnel's LocalConfig describes it (same keys).
///
/// A value with its fields in one shared box (copy on write): every routing table and every open
/// tunnel's record holds workloads, so a copy costs a pointer instead of about 300 bytes.
public struct Workload: Sendable, Hashable {
    private final class Fields: @unchecked Sendable {   // never mutated once shared (see `unique`)
        var uid: String
        var name: String
        var namespace: String
        var serviceAccount: String
        var trustDomain: String
        var workloadIps: [IPAddress]
        var `protocol`: InboundProtocol
        var node: String
        var clusterId: String
        var workloadName: String
        var canonicalName: String
        var canonicalRevision: String
        var labels: [String: String]
        var services: [String: [UInt16: UInt16]]
        var identity: SPIFFEID
        var authorizationPolicies: [String]
        var network: String
        var networkGateway: GatewayAddress?
        var waypoint: GatewayAddress?
        var status: HealthStatus
        var locality: Locality
        var capacity: UInt32
        var applicationTunnel: ApplicationTunnel?
        var workloadType: String
        var hostname: String

        init(uid: String, name: String, namespace: String, serviceAccount: String, trustDomain: String, workloadIps: [IPAddress], protocol: InboundProtocol, node: String, clusterId: String, workloadName: String, canonicalName: String, canonicalRevision: String, labels: [String: String], services: [String: [UInt16: UInt16]], identity: SPIFFEID, authorizationPolicies: [String], network: String, networkGateway: GatewayAddress?, waypoint: GatewayAddress?, status: HealthStatus, locality: Locality, capacity: UInt32, applicationTunnel: ApplicationTunnel?, workloadType: String, hostname: String) {
            self.uid = uid
            self.name = name
            self.namespace = namespace
            self.serviceAccount = serviceAccount
            self.trustDomain = trustDomain
            self.workloadIps = workloadIps
            self.`protocol` = `protocol`
            self.node = node
            self.clusterId = clusterId
            self.workloadName = workloadName
            self.canonicalName = canonicalName
            self.canonicalRevision = canonicalRevision
            self.labels = labels
            self.services = services
            self.identity = identity
            self.authorizationPolicies = authorizationPolicies
            self.network = network
            self.networkGateway = networkGateway
            self.waypoint = waypoint
            self.status = status
            self.locality = locality
            self.capacity = capacity
            self.applicationTunnel = applicationTunnel
            self.workloadType = workloadType
            self.hostname = hostname
        }

        func copy() -> Fields {
            Fields(uid: uid, name: name, namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain, workloadIps: workloadIps, protocol: `protocol`, node: node, clusterId: clusterId, workloadName: workloadName, canonicalName: canonicalName, canonicalRevision: canonicalRevision, labels: labels, services: services, identity: identity, authorizationPolicies: authorizationPolicies, network: network, networkGateway: networkGateway, waypoint: waypoint, status: status, locality: locality, capacity: capacity, applicationTunnel: applicationTunnel, workloadType: workloadType, hostname: hostname)
        }
    }

    private var fields: Fields

    public init(uid: String, name: String, namespace: String, serviceAccount: String, trustDomain: String, workloadIps: [IPAddress], protocol: InboundProtocol, node: String, clusterId: String, workloadName: String, canonicalName: String, canonicalRevision: String, labels: [String: String], services: [String: [UInt16: UInt16]], identity: SPIFFEID,
                authorizationPolicies: [String] = [], network: String = "", networkGateway: GatewayAddress? = nil, waypoint: GatewayAddress? = nil,
                status: HealthStatus = .healthy, locality: Locality = Locality(), capacity: UInt32 = 1,
                applicationTunnel: ApplicationTunnel? = nil, workloadType: String = "deployment", hostname: String = "") {
        fields = Fields(uid: uid, name: name, namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain, workloadIps: workloadIps, protocol: `protocol`, node: node, clusterId: clusterId, workloadName: workloadName, canonicalName: canonicalName, canonicalRevision: canonicalRevision, labels: labels, services: services, identity: identity, authorizationPolicies: authorizationPolicies, network: network, networkGateway: networkGateway, waypoint: waypoint, status: status, locality: locality, capacity: capacity, applicationTunnel: applicationTunnel, workloadType: workloadType, hostname: hostname)
    }

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&fields) { fields = fields.copy() }
    }

    public var uid: String {
        get { fields.uid }
        set { unique(); fields.uid = newValue }
    }
    public var name: String {
        get { fields.name }
        set { unique(); fields.name = newValue }
    }
    public var namespace: String {
        get { fields.namespace }
        set { unique(); fields.namespace = newValue }
    }
    public var serviceAccount: String {
        get { fields.serviceAccount }
        set { unique(); fields.serviceAccount = newValue }
    }
    public var trustDomain: String {
        get { fields.trustDomain }
        set { unique(); fields.trustDomain = newValue }
    }
    public var workloadIps: [IPAddress] {
        get { fields.workloadIps }
        set { unique(); fields.workloadIps = newValue }
    }
    public var `protocol`: InboundProtocol {
        get { fields.`protocol` }
        set { unique(); fields.`protocol` = newValue }
    }
    public var node: String {
        get { fields.node }
        set { unique(); fields.node = newValue }
    }
    public var clusterId: String {
        get { fields.clusterId }
        set { unique(); fields.clusterId = newValue }
    }
    public var workloadName: String {
        get { fields.workloadName }
        set { unique(); fields.workloadName = newValue }
    }
    public var canonicalName: String {
        get { fields.canonicalName }
        set { unique(); fields.canonicalName = newValue }
    }
    public var canonicalRevision: String {
        get { fields.canonicalRevision }
        set { unique(); fields.canonicalRevision = newValue }
    }
    public var labels: [String: String] {
        get { fields.labels }
        set { unique(); fields.labels = newValue }
    }
    /// `"<namespace>/<hostname>"` → service port → target port.
    public var services: [String: [UInt16: UInt16]] {
        get { fields.services }
        set { unique(); fields.services = newValue }
    }
    public var identity: SPIFFEID {
        get { fields.identity }
        set { unique(); fields.identity = newValue }
    }
    /// `"<namespace>/<name>"` of the policies that select it by name (xDS WORKLOAD_SELECTOR scope).
    public var authorizationPolicies: [String] {
        get { fields.authorizationPolicies }
        set { unique(); fields.authorizationPolicies = newValue }
    }

    /// The network its addresses are on (empty: the default network).
    public var network: String {
        get { fields.network }
        set { unique(); fields.network = newValue }
    }
    /// How to reach it from another network (`ProxyState+NetworkGateway`).
    public var networkGateway: GatewayAddress? {
        get { fields.networkGateway }
        set { unique(); fields.networkGateway = newValue }
    }
    /// Its waypoint: connections to its addresses go through it (`ProxyState+Waypoint`).
    public var waypoint: GatewayAddress? {
        get { fields.waypoint }
        set { unique(); fields.waypoint = newValue }
    }
    /// Unhealthy: no service picks it (unless the service allows all); its address still works.
    public var status: HealthStatus {
        get { fields.status }
        set { unique(); fields.status = newValue }
    }
    public var locality: Locality {
        get { fields.locality }
        set { unique(); fields.locality = newValue }
    }
    /// Its weight among a service's endpoints (istiod's stand-in for another network's endpoints
    /// carries how many it stands for); 0: never picked.
    public var capacity: UInt32 {
        get { fields.capacity }
        set { unique(); fields.capacity = newValue }
    }
    /// It takes tunnelled traffic itself (`ApplicationTunnel`); nil: its apps are sent plain TCP.
    public var applicationTunnel: ApplicationTunnel? {
        get { fields.applicationTunnel }
        set { unique(); fields.applicationTunnel = newValue }
    }

    /// What `workloadName` names, as istiod says (`deployment`, `cronjob`, `pod`, `job`); baggage
    /// carries the name as `k8s.<type>.name`.
    public var workloadType: String {
        get { fields.workloadType }
        set { unique(); fields.workloadType = newValue }
    }
    /// A name the proxy resolves when a connection picks this workload (istiod's form of a
    /// ServiceEntry endpoint with `resolution: DNS`); empty for a workload reached by its addresses.
    public var hostname: String {
        get { fields.hostname }
        set { unique(); fields.hostname = newValue }
    }

    public static func == (a: Workload, b: Workload) -> Bool {
        a.fields === b.fields || (a.uid == b.uid && a.name == b.name && a.namespace == b.namespace && a.serviceAccount == b.serviceAccount && a.trustDomain == b.trustDomain && a.workloadIps == b.workloadIps && a.`protocol` == b.`protocol` && a.node == b.node && a.clusterId == b.clusterId && a.workloadName == b.workloadName && a.canonicalName == b.canonicalName && a.canonicalRevision == b.canonicalRevision && a.labels == b.labels && a.services == b.services && a.identity == b.identity && a.authorizationPolicies == b.authorizationPolicies && a.network == b.network && a.networkGateway == b.networkGateway && a.waypoint == b.waypoint && a.status == b.status && a.locality == b.locality && a.capacity == b.capacity && a.applicationTunnel == b.applicationTunnel && a.workloadType == b.workloadType && a.hostname == b.hostname)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(uid)
        hasher.combine(name)
        hasher.combine(namespace)
        hasher.combine(serviceAccount)
        hasher.combine(trustDomain)
        hasher.combine(workloadIps)
        hasher.combine(`protocol`)
        hasher.combine(node)
        hasher.combine(clusterId)
        hasher.combine(workloadName)
        hasher.combine(canonicalName)
        hasher.combine(canonicalRevision)
        hasher.combine(labels)
        hasher.combine(services)
        hasher.combine(identity)
        hasher.combine(authorizationPolicies)
        hasher.combine(network)
        hasher.combine(networkGateway)
        hasher.combine(waypoint)
        hasher.combine(status)
        hasher.combine(locality)
        hasher.combine(capacity)
        hasher.combine(applicationTunnel)
        hasher.combine(workloadType)
        hasher.combine(hostname)
    }
}

extension Workload {
    /// Whether `name` can be looked up in DNS as a workload's hostname: a DNS name (`DNSName`'s
    /// lengths, a trailing dot allowed) whose labels are host-name bytes (`DNSName.key`), no wildcard.
    public static func isResolvableHostname(_ name: String) -> Bool {
        guard let dns = DNSName(name), !dns.labels.isEmpty, let key = dns.key else { return false }
        return !key.contains("*")
    }

    /// Istio's canonical service from a pod's labels (what istiod puts in `canonical_name`):
    /// `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else `app`, else the
    /// workload (deployment) name. Metrics label `source_app`/`destination_app` with it.
    public static func canonicalName(labels: [String: String], workloadName: String) -> String {
        labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"] ?? labels["app"] ?? workloadName
    }

    /// `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else `version`,
    /// else `latest` (the `_version` metric labels).
    public static func canonicalRevision(labels: [String: String]) -> String {
        labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"] ?? labels["version"] ?? "latest"
    }
}

/// One of a service's weighted waypoints (ztunnel's `WeightedWaypoint`).
public struct WeightedWaypoint: Sendable, Hashable {
    public var destination: GatewayAddress
    public var weight: UInt32

    public init(destination: GatewayAddress, weight: UInt32) {
        self.destination = destination
        self.weight = weight
    }
}

/// A service: a hostname and VIPs in front of workloads.
public struct Service: Sendable, Hashable {
    public var name: String
    public var namespace: String { didSet { key = Self.key(namespace, hostname) } }
    public var hostname: String { didSet { key = Self.key(namespace, hostname) } }
    /// The key workloads use in their `services` map, `<namespace>/<hostname>`: kept, as every
    /// connection to a VIP looks the service's endpoints up by it.
    public private(set) var key: String
    /// Its VIPs, each on its network (a service spanning clusters has one per network, and two
    /// networks may give it the same IP).
    public var addresses: [NetworkAddress]
    /// Address blocks every address of which is this service (ztunnel's `cidr_vips`, a VIP with a
    /// prefix length): tried after exact VIPs and workload addresses, the longest prefix first.
    public var cidrVIPs: [NetworkCIDR] = []
    /// Service port → target port (0 means "same as the service port").
    public var ports: [UInt16: UInt16]
    /// Identities a client should accept from this service's endpoints besides the endpoint's own.
    public var subjectAltNames: [SPIFFEID]
    /// The service's waypoint: connections to its VIPs go through it (`ProxyState+Waypoint`).
    public var waypoint: GatewayAddress? = nil
    /// ztunnel's `canonical`: of several services with one hostname, the one the hostname names.
    public var canonical = false
    /// How its endpoints are picked; nil: any healthy one, weighted by capacity.
    public var loadBalancer: LoadBalancer? = nil
    /// Waypoints each connection picks one of by weight (a canary moving a share of traffic to
    /// another waypoint); empty, or every weight 0: `waypoint`.
    public var weightedWaypoints: [WeightedWaypoint] = []
    /// Namespace: only clients in its own namespace resolve it (by VIP or hostname); to others
    /// its VIP is an address the mesh does not know.
    public var visibility = Visibility.public
    /// The address families it serves (Kubernetes' `ipFamilyPolicy`); nil: what its VIPs show. A
    /// single-stack headless service answers DNS in its family only, even for dual-stack pods.
    public var ipFamilies: IPFamilies? = nil

    public enum IPFamilies: String, Sendable, Hashable, CaseIterable { case ipv4 = "IPv4", ipv6 = "IPv6", dual = "Dual" }

    public enum Visibility: String, Sendable, Hashable, CaseIterable { case `public` = "Public", namespace = "Namespace" }

    public init(name: String, namespace: String, hostname: String, addresses: [NetworkAddress], ports: [UInt16: UInt16], subjectAltNames: [SPIFFEID]) {
        key = Self.key(namespace, hostname)
        self.name = name
        self.namespace = namespace
        self.hostname = hostname
        self.addresses = addresses
        self.ports = ports
        self.subjectAltNames = subjectAltNames
    }

    /// VIPs on the default network.
    public init(name: String, namespace: String, hostname: String, vips: [IPAddress], ports: [UInt16: UInt16], subjectAltNames: [SPIFFEID]) {
        self.init(name: name, namespace: namespace, hostname: hostname, addresses: vips.map { NetworkAddress(network: "", ip: $0) },
                  ports: ports, subjectAltNames: subjectAltNames)
    }

    /// Its VIPs' IPs, whatever their network.
    public var vips: [IPAddress] { addresses.map(\.ip) }

    /// Its first VIP on `network` (the address a client that looked its name up would dial).
    public func vip(on network: String) -> IPAddress? { addresses.first { $0.network == network }?.ip }

    /// Whether a client in `namespace` may resolve it; nil (a client that is no known workload):
    /// any service, as ztunnel filters only when it knows the client's namespace.
    public func isVisible(to namespace: String?) -> Bool {
        visibility == .public || namespace.map { $0 == self.namespace } ?? true
    }

    /// The key workloads use in their `services` map.
    static func key(_ namespace: String, _ hostname: String) -> String { "\(namespace)/\(hostname)" }
}
