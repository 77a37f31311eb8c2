import Foundation
import HBONECore
import HBONEIdentity
import HBONEAuthz
import HBONEConfig
import HBONEXDSProto
import SwiftProtobuf

/// istiod's resources onto the proxy's own types, one resource at a time, so a bad one is
/// rejected with its reason while the good ones in the same response are used.
public enum XDSConversion {
    public static let addressType = "type.googleapis.com/istio.workload.Address"
    public static let authorizationType = "type.googleapis.com/istio.security.Authorization"

    /// What one `Address` resource is.
    public enum Address: Equatable, Sendable {
        case workload(Workload)
        case service(Service)
    }

    /// Decodes `resource` (an `Any` holding an `istio.workload.Address`) named `name`.
    public static func address(name: String, resource: Google_Protobuf_Any?) throws(XDSRejection) -> Address {
        let message: Istio_Workload_Address = try decode(name, resource, type: addressType)
        switch message.type {
        case let .workload(w)?: return .workload(try workload(name, w))
        case let .service(s)?: return .service(try service(name, s))
        case nil: throw XDSRejection(name, "Address holds neither a workload nor a service")
        }
    }

    /// Decodes `resource` (an `Any` holding an `istio.security.Authorization`) named `name`.
    public static func authorization(name: String, resource: Google_Protobuf_Any?) throws(XDSRejection) -> Policy {
        let message: Istio_Security_Authorization = try decode(name, resource, type: authorizationType)
        return try policy(name, message)
    }

    static func decode<M: SwiftProtobuf.Message>(_ name: String, _ resource: Google_Protobuf_Any?, type: String) throws(XDSRejection) -> M {
        guard let resource else { throw XDSRejection(name, "resource without a body") }
        guard resource.typeURL == type else { throw XDSRejection(name, "type \(resource.typeURL.prefix(100)), want \(type)") }
        do {
            return try M(serializedBytes: resource.value)
        } catch {
            throw XDSRejection(name, "cannot decode \(type.split(separator: "/").last ?? ""): \(error)")
        }
    }

    // MARK: Workloads and services

    static func workload(_ name: String, _ w: Istio_Workload_Workload) throws(XDSRejection) -> Workload {
        func fail(_ reason: String) -> XDSRejection { XDSRejection(name, reason) }
        guard !w.name.isEmpty else { throw fail("workload without a name") }
        // istiod names a workload's resource by its uid; another name would key the store and the
        // proxy's tables differently (a removal by name would miss the uid the tables hold).
        guard w.uid.isEmpty || w.uid == name else { throw fail("a workload's resource name must be its uid \(w.uid.prefix(80))") }
        guard !w.namespace.isEmpty else { throw fail("workload \(w.name) without a namespace") }
        var ips: [IPAddress] = []
        for (i, raw) in w.addresses.enumerated() {
            guard let ip = IPAddress(networkBytes: raw) else { throw fail("addresses[\(i)] has \(raw.count) bytes (want 4 or 16)") }
            ips.append(ip)
        }
        guard w.hostname.isEmpty || Workload.isResolvableHostname(w.hostname) else {
            throw fail("hostname \"\(w.hostname.prefix(80))\" is not a DNS name to resolve")
        }
        let proto: InboundProtocol
        switch w.tunnelProtocol {
        case .none: proto = .tcp
        case .hbone: proto = .hbone
        case .legacyIstioMtls: throw fail("tunnel_protocol LEGACY_ISTIO_MTLS (sidecar mTLS) is not supported")
        case let .UNRECOGNIZED(n): throw fail("unknown tunnel_protocol \(n)")
        }
        let trustDomain = w.trustDomain.isEmpty ? "cluster.local" : w.trustDomain
        let serviceAccount = w.serviceAccount.isEmpty ? "default" : w.serviceAccount
        let identity: SPIFFEID
        do { identity = try SPIFFEID(trustDomain: trustDomain, namespace: w.namespace, serviceAccount: serviceAccount) } catch {
            throw fail("identity: \(error)")
        }
        var services: [String: [UInt16: UInt16]] = [:]
        for (key, list) in w.services {
            guard isServiceKey(key) else { throw fail("services key \"\(key.prefix(80))\" is not <namespace>/<hostname>") }
            services[key] = try ports(list.ports, fail)
        }
        for p in w.authorizationPolicies where !isServiceKey(p) {
            throw fail("authorization_policies entry \"\(p.prefix(80))\" is not <namespace>/<name>")
        }
        let networkGateway = w.hasNetworkGateway ? try gateway(w.networkGateway, "network_gateway", fail) : nil
        let waypoint = w.hasWaypoint ? try gateway(w.waypoint, "waypoint", fail) : nil
        let status: HealthStatus
        switch w.status {
        case .healthy: status = .healthy
        case .unhealthy: status = .unhealthy
        case let .UNRECOGNIZED(n): throw fail("unknown status \(n)")
        }
        var tunnel: ApplicationTunnel?
        if w.hasApplicationTunnel {
            let t = w.applicationTunnel
            guard t.port <= UInt32(UInt16.max) else { throw fail("application_tunnel port \(t.port) is not a port") }
            let proto: ApplicationTunnel.Kind
            switch t.protocol {
            case .none: proto = .none
            case .proxy: proto = .proxy
            case let .UNRECOGNIZED(n): throw fail("unknown application_tunnel protocol \(n)")
            }
            tunnel = ApplicationTunnel(protocol: proto, port: t.port == 0 ? nil : UInt16(t.port))
        }
        return Workload(uid: name, name: w.name, namespace: w.namespace, serviceAccount: serviceAccount,
                        trustDomain: trustDomain, workloadIps: ips, protocol: proto, node: w.node,
                        clusterId: w.clusterID.isEmpty ? "Kubernetes" : w.clusterID,
                        workloadName: w.workloadName.isEmpty ? w.name : w.workloadName,
                        canonicalName: w.canonicalName.isEmpty ? w.name : w.canonicalName,
                        canonicalRevision: w.canonicalRevision.isEmpty ? "latest" : w.canonicalRevision,
                        labels: [:], services: services, identity: identity, authorizationPolicies: w.authorizationPolicies,
                        network: w.network, networkGateway: networkGateway, waypoint: waypoint, status: status,
                        locality: Locality(region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone),
                        capacity: w.hasCapacity ? w.capacity.value : 1, applicationTunnel: tunnel,
                        workloadType: workloadType(w.workloadType), hostname: w.hostname)
    }

    /// As ztunnel reads it: a value this build does not know is the default, a deployment.
    static func workloadType(_ t: Istio_Workload_WorkloadType) -> String {
        switch t {
        case .cronjob: return "cronjob"
        case .pod: return "pod"
        case .job: return "job"
        case .deployment, .UNRECOGNIZED: return "deployment"
        }
    }

    /// A service's `load_balancing`; an unknown scope, mode or policy rejects the service (as in
    /// ztunnel) rather than balancing it some other way than istiod meant.
    static func loadBalancer(_ lb: Istio_Workload_LoadBalancing, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> LoadBalancer {
        var scopes: [LoadBalancer.Scope] = []
        for (i, scope) in lb.routingPreference.enumerated() {
            let s: LoadBalancer.Scope
            switch scope {
            case .region: s = .region
            case .zone: s = .zone
            case .subzone: s = .subzone
            case .node: s = .node
            case .cluster: s = .cluster
            case .network: s = .network
            case .unspecifiedScope, .UNRECOGNIZED: throw fail("load_balancing.routing_preference[\(i)] is not a scope (\(scope.rawValue))")
            }
            scopes.append(s)
        }
        let mode: LoadBalancer.Mode
        switch lb.mode {
        case .unspecifiedMode: mode = .standard
        case .strict: mode = .strict
        case .failover: mode = .failover
        case .passthrough: mode = .passthrough
        case let .UNRECOGNIZED(n): throw fail("unknown load_balancing.mode \(n)")
        }
        let health: LoadBalancer.HealthPolicy
        switch lb.healthPolicy {
        case .onlyHealthy: health = .onlyHealthy
        case .allowAll: health = .allowAll
        case let .UNRECOGNIZED(n): throw fail("unknown load_balancing.health_policy \(n)")
        }
        return LoadBalancer(routingPreferences: scopes, mode: mode, healthPolicy: health)
    }

    static func gateway(_ g: Istio_Workload_GatewayAddress, _ field: String, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> GatewayAddress {
        guard g.hboneMtlsPort <= 65_535 else { throw fail("\(field).hbone_mtls_port \(g.hboneMtlsPort) is out of range") }
        let port = g.hboneMtlsPort == 0 ? 15008 : UInt16(g.hboneMtlsPort)
        switch g.destination {
        case let .address(a)?:
            guard let ip = IPAddress(networkBytes: a.address) else { throw fail("\(field).address has \(a.address.count) bytes (want 4 or 16)") }
            return GatewayAddress(destination: .address(network: a.network, ip: ip), hboneMtlsPort: port)
        case let .hostname(h)?:
            guard !h.namespace.isEmpty, !h.hostname.isEmpty else { throw fail("\(field).hostname needs a namespace and a hostname") }
            return GatewayAddress(destination: .hostname(namespace: h.namespace, hostname: h.hostname), hboneMtlsPort: port)
        case nil:
            throw fail("\(field) names neither an address nor a hostname")
        }
    }

    static func service(_ name: String, _ s: Istio_Workload_Service) throws(XDSRejection) -> Service {
        func fail(_ reason: String) -> XDSRejection { XDSRejection(name, reason) }
        guard !s.name.isEmpty, !s.namespace.isEmpty, !s.hostname.isEmpty else {
            throw fail("service without a name, namespace or hostname")
        }
        // istiod names a service <namespace>/<hostname>; anything else is not the resource it claims.
        guard name == "\(s.namespace)/\(s.hostname)" else { throw fail("a service's resource name must be \(s.namespace)/\(s.hostname)") }
        var addresses: [NetworkAddress] = [], cidrs: [NetworkCIDR] = []
        for (i, a) in s.addresses.enumerated() {
            guard let ip = IPAddress(networkBytes: a.address) else { throw fail("addresses[\(i)] has \(a.address.count) bytes (want 4 or 16)") }
            // A prefix length short of the address's own makes it a CIDR VIP (a ServiceEntry's
            // block). Reading it as one host would send the rest of the block past the service
            // (its waypoint and policies).
            let full: UInt32 = a.address.count == 16 ? 128 : 32
            if a.hasLength, a.length != full {
                guard let cidr = CIDR(ip, prefixLength: Int(min(a.length, 255)), spelledV6: a.address.count == 16) else {
                    throw fail("addresses[\(i)] has prefix length \(a.length) (at most \(full))")
                }
                cidrs.append(NetworkCIDR(network: a.network, cidr: cidr))
            } else {
                addresses.append(NetworkAddress(network: a.network, ip: ip))
            }
        }
        let waypoint = s.hasWaypoint ? try gateway(s.waypoint, "waypoint", fail) : nil
        var sans: [SPIFFEID] = []
        for (i, text) in s.subjectAltNames.enumerated() {
            do { sans.append(try SPIFFEID(parsing: text)) } catch { throw fail("subject_alt_names[\(i)]: \(error)") }
        }
        var service = Service(name: s.name, namespace: s.namespace, hostname: s.hostname, addresses: addresses, ports: try ports(s.ports, fail),
                              subjectAltNames: sans)
        service.cidrVIPs = cidrs
        service.waypoint = waypoint
        service.loadBalancer = s.hasLoadBalancing ? try loadBalancer(s.loadBalancing, fail) : nil
        service.canonical = s.canonical
        switch s.visibility {
        case .public: service.visibility = .public
        case .namespace: service.visibility = .namespace
        // Unknown: a narrower scope istiod meant; treating it as public would widen it.
        case let .UNRECOGNIZED(n): throw fail("unknown visibility \(n)")
        }
        switch s.ipFamilies {
        case .automatic: service.ipFamilies = nil
        case .ipv4Only: service.ipFamilies = .ipv4
        case .ipv6Only: service.ipFamilies = .ipv6
        case .dual: service.ipFamilies = .dual
        case let .UNRECOGNIZED(n): throw fail("unknown ip_families \(n)")
        }
        for (i, ww) in s.weightedWaypoints.enumerated() {
            guard ww.hasDestination else { throw fail("weighted_waypoints[\(i)] names no waypoint") }
            service.weightedWaypoints.append(WeightedWaypoint(destination: try gateway(ww.destination, "weighted_waypoints[\(i)]", fail), weight: ww.weight))
        }
        return service
    }

    static func ports(_ list: [Istio_Workload_Port], _ fail: (String) -> XDSRejection) throws(XDSRejection) -> [UInt16: UInt16] {
        var map: [UInt16: UInt16] = [:]
        for p in list {
            guard p.servicePort > 0, p.servicePort <= 65_535, p.targetPort <= 65_535 else {
                throw fail("port \(p.servicePort) → \(p.targetPort) is out of range")
            }
            map[UInt16(p.servicePort)] = UInt16(p.targetPort)
        }
        return map
    }

    /// `<namespace>/<rest>` with both parts present.
    static func isServiceKey(_ key: String) -> Bool {
        guard let slash = key.firstIndex(of: "/") else { return false }
        return slash != key.startIndex && key.index(after: slash) != key.endIndex
    }

    // MARK: Policies

    static func policy(_ name: String, _ a: Istio_Security_Authorization) throws(XDSRejection) -> Policy {
        func fail(_ reason: String) -> XDSRejection { XDSRejection(name, reason) }
        guard !a.name.isEmpty, !a.namespace.isEmpty else { throw fail("policy without a name or namespace") }
        // As istiod names them. Workloads select policies, and decisions name them, by namespace/name:
        // two resources carrying one policy name would both apply, and removing one would keep the other.
        guard name == "\(a.namespace)/\(a.name)" else { throw fail("a policy's resource name must be \(a.namespace.prefix(80))/\(a.name.prefix(80))") }
        let scope: Policy.Scope
        switch a.scope {
        case .global: scope = .global
        case .namespace: scope = .namespace
        case .workloadSelector: scope = .selectedByWorkloads
        case let .UNRECOGNIZED(n): throw fail("unknown scope \(n)")
        }
        let action: Policy.Action
        switch a.action {
        case .allow: action = .allow
        case .deny: action = .deny
        case let .UNRECOGNIZED(n): throw fail("unknown action \(n)")
        }
        var rules: [[[Match]]] = []
        for (r, rule) in a.rules.enumerated() {
            var clauses: [[Match]] = []
            for (c, clause) in rule.clauses.enumerated() {
                var matches: [Match] = []
                for (m, match) in clause.matches.enumerated() {
                    do throws(XDSRejection) { matches.append(try self.match(match, fail)) } catch {
                        throw fail("rules[\(r)].clauses[\(c)].matches[\(m)]: \(error.reason)")
                    }
                }
                clauses.append(matches)
            }
            rules.append(clauses)
        }
        return Policy(name: a.name, namespace: a.namespace, scope: scope, action: action, dryRun: a.dryRun, rules: rules)
    }

    static func match(_ m: Istio_Security_Match, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> Match {
        var out = Match()
        out.namespaces = try m.namespaces.map { (s) throws(XDSRejection) in try stringMatch(s, "namespaces", fail) }
        out.notNamespaces = try m.notNamespaces.map { (s) throws(XDSRejection) in try stringMatch(s, "not_namespaces", fail) }
        out.principals = try m.principals.map { (s) throws(XDSRejection) in try stringMatch(s, "principals", fail) }
            + (try m.serviceAccounts.map { (s) throws(XDSRejection) in try serviceAccount(s, fail) })
        out.notPrincipals = try m.notPrincipals.map { (s) throws(XDSRejection) in try stringMatch(s, "not_principals", fail) }
            + (try m.notServiceAccounts.map { (s) throws(XDSRejection) in try serviceAccount(s, fail) })
        out.sourceIps = try m.sourceIps.map { (a) throws(XDSRejection) in try cidr(a, fail) }
        out.notSourceIps = try m.notSourceIps.map { (a) throws(XDSRejection) in try cidr(a, fail) }
        out.destinationIps = try m.destinationIps.map { (a) throws(XDSRejection) in try cidr(a, fail) }
        out.notDestinationIps = try m.notDestinationIps.map { (a) throws(XDSRejection) in try cidr(a, fail) }
        out.destinationPorts = try m.destinationPorts.map { (p) throws(XDSRejection) in try port(p, fail) }
        out.notDestinationPorts = try m.notDestinationPorts.map { (p) throws(XDSRejection) in try port(p, fail) }
        return out
    }

    static func stringMatch(_ s: Istio_Security_StringMatch, _ field: String, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> StringMatch {
        switch s.matchType {
        case let .exact(v)?: return .exact(v)
        case let .prefix(v)?: return .prefix(v)
        case let .suffix(v)?: return .suffix(v)
        case .presence?: return .presence
        case nil: throw fail("\(field): a string match with no kind")
        }
    }

    /// A service account as a principal: `<any trust domain>/ns/<namespace>/sa/<name>`.
    static func serviceAccount(_ s: Istio_Security_ServiceAccountMatch, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> StringMatch {
        guard let match = StringMatch.serviceAccount(namespace: s.namespace, name: s.serviceAccount) else {
            throw fail("service account match needs a namespace and a name")
        }
        return match
    }

    static func cidr(_ a: Istio_Security_Address, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> CIDR {
        let b = [UInt8](a.address)
        let text: String
        switch b.count {
        case 4: text = b.map(String.init).joined(separator: ".")
        case 16: text = stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }.joined(separator: ":")
        default: throw fail("address has \(b.count) bytes (want 4 or 16)")
        }
        guard let block = CIDR("\(text)/\(a.length)") else { throw fail("\(text)/\(a.length) is not an address block") }
        return block
    }

    static func port(_ p: UInt32, _ fail: (String) -> XDSRejection) throws(XDSRejection) -> UInt16 {
        guard p > 0, p <= 65_535 else { throw fail("port \(p) is out of range") }
        return UInt16(p)
    }
}
