import Foundation
import HBONECore
import HBONEConfig
import HBONEAuthz
import HBONETLS

/// `/config_dump` in ztunnel's shape, as `istioctl ztunnel-config` decodes it (istio/istio
/// `istioctl/pkg/writer/ztunnel/configdump`): the fields it reads, with its names and JSON types.
/// Fields of hbone's own ride along (`local`, `identity`, `labels`, …); decoders skip them.
struct ConfigDump: Encodable {
    var workloads: [WorkloadEntry]
    var services: [ServiceEntry]
    var policies: [PolicyEntry]
    var certificates: [CertificatesEntry]
    var workloadState: [String: WorkloadStateEntry]

    /// ztunnel's shape: `{"destination": "network/ip" | "namespace/hostname", "hboneMtlsPort": 15008}`.
    struct GatewayEntry: Encodable {
        var destination: String
        var hboneMtlsPort: UInt16
    }

    /// ztunnel's `{"protocol": "PROXY", "port": 15088}`; NONE without a port for a workload that has none.
    struct ApplicationTunnel: Encodable {
        var `protocol` = "NONE"
        var port: UInt16?
    }

    struct LocalityEntry: Encodable {
        var region: String
        var zone: String
        var subzone: String
    }

    /// ztunnel's `{"routingPreferences": ["Network", …], "mode": "Failover", "healthPolicy": "OnlyHealthy"}`.
    struct LoadBalancerEntry: Encodable {
        var routingPreferences: [String]
        var mode: String
        var healthPolicy: String
    }

    struct WorkloadEntry: Encodable {
        var uid: String
        var workloadIps: [String]
        var waypoint: GatewayEntry?
        var networkGateway: GatewayEntry?
        var `protocol`: String
        var name: String
        var namespace: String
        var serviceAccount: String
        var workloadName: String
        var workloadType: String
        var canonicalName: String
        var canonicalRevision: String
        var clusterId: String
        var trustDomain: String
        var locality: LocalityEntry
        var node: String
        var network: String?
        var status: String
        var capacity: UInt32
        var hostname = ""
        var applicationTunnel = ApplicationTunnel()
        var authorizationPolicies: [String]
        // hbone's own
        var local: Bool
        var identity: String
        var labels: [String: String]
        var services: [String: [String: Int]]
    }

    struct EndpointEntry: Encodable {
        var workloadUid: String
        var service: String
        var address: String?
        var port: [String: Int]
        var status: String
    }

    struct ServiceEntry: Encodable {
        var name: String
        var namespace: String
        var hostname: String
        var vips: [String]
        /// ztunnel's `cidrVips`, each `network/ip/length`; omitted when none.
        var cidrVips: [String]?
        var ports: [String: Int]
        var waypoint: GatewayEntry?
        var endpoints: [String: EndpointEntry]
        var subjectAltNames: [String]
        var ipFamilies: String
        var loadBalancer: LoadBalancerEntry?
        var weightedWaypoints: [WeightedWaypointEntry]?
        var visibility: String
        var canonical: Bool
    }

    struct WeightedWaypointEntry: Encodable {
        var destination: GatewayEntry
        var weight: UInt32
    }

    /// A string match as ztunnel serializes its enum: `{"Exact": "…"}`, `{"Presence": {}}`.
    struct StringMatchEntry: Encodable {
        var match: StringMatch

        private struct Empty: Encodable {}
        private enum Key: String, CodingKey { case Exact, Prefix, Suffix, Presence }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            switch match {
            case let .exact(s): try c.encode(s, forKey: .Exact)
            case let .prefix(s): try c.encode(s, forKey: .Prefix)
            case let .suffix(s): try c.encode(s, forKey: .Suffix)
            case .presence: try c.encode(Empty(), forKey: .Presence)
            }
        }
    }

    struct MatchEntry: Encodable {
        var namespaces: [StringMatchEntry]?
        var notNamespaces: [StringMatchEntry]?
        var principals: [StringMatchEntry]?
        var notPrincipals: [StringMatchEntry]?
        var sourceIps: [String]?
        var notSourceIps: [String]?
        var destinationIps: [String]?
        var notDestinationIps: [String]?
        var destinationPorts: [UInt16]?
        var notDestinationPorts: [UInt16]?
        /// hbone's own: HTTP-only fields this match named, which L4 cannot judge.
        var unjudgeable: [String]?

        init(_ m: Match) {
            func strings(_ list: [StringMatch]) -> [StringMatchEntry]? { list.isEmpty ? nil : list.map { StringMatchEntry(match: $0) } }
            func cidrs(_ list: [CIDR]) -> [String]? { list.isEmpty ? nil : list.map(\.description) }
            namespaces = strings(m.namespaces)
            notNamespaces = strings(m.notNamespaces)
            principals = strings(m.principals)
            notPrincipals = strings(m.notPrincipals)
            sourceIps = cidrs(m.sourceIps)
            notSourceIps = cidrs(m.notSourceIps)
            destinationIps = cidrs(m.destinationIps)
            notDestinationIps = cidrs(m.notDestinationIps)
            destinationPorts = m.destinationPorts.isEmpty ? nil : m.destinationPorts
            notDestinationPorts = m.notDestinationPorts.isEmpty ? nil : m.notDestinationPorts
            unjudgeable = m.unjudgeable.isEmpty ? nil : m.unjudgeable
        }
    }

    struct PolicyEntry: Encodable {
        var name: String
        var namespace: String
        var scope: String
        var action: String
        /// Rules → clauses → matches (ztunnel's nesting).
        var rules: [[[MatchEntry]]]
        // hbone's own
        var selector: [String: String]?
        var dryRun: Bool
        var warnings: [String]
    }

    struct CertEntry: Encodable {
        var pem: String
        /// Decimal, as ztunnel prints it.
        var serialNumber: String
        var validFrom: String
        var expirationTime: String
        // hbone's own
        var subject: String
        var issuer: String
        var uriSANs: [String]
        var key: String
    }

    struct CertificatesEntry: Encodable {
        var identity: String
        var state: String
        var certChain: [CertEntry]
        var rootCerts: [CertEntry]
    }

    struct WorkloadInfoEntry: Encodable {
        var name: String
        var namespace: String
        var trustDomain: String
        var serviceAccount: String
    }

    struct ConnectionsEntry: Encodable {
        var inbound: [String] = []
        var outbound: [String] = []
    }

    struct WorkloadStateEntry: Encodable {
        var state: String
        var connections = ConnectionsEntry()
        var info: WorkloadInfoEntry
    }
}

extension ConfigDump {
    init(state s: ProxyState, now: Date = Date()) {
        let iso = ISO8601DateFormatter()
        func cert(_ c: Certificate) -> CertEntry {
            CertEntry(pem: c.pem, serialNumber: ConfigDump.decimal(fromHex: c.serialHex), validFrom: iso.string(from: c.notBefore),
                      expirationTime: iso.string(from: c.notAfter), subject: c.subject, issuer: c.issuer, uriSANs: c.uriSANs, key: c.keyDescription)
        }
        var seen: Set<String> = []
        certificates = []
        for w in s.config.certifiedLocalWorkloads where seen.insert(w.identity.description).inserted {
            guard let ctx = s.identities[w.identity] else {
                certificates.append(CertificatesEntry(identity: w.identity.description, state: "Unavailable", certChain: [], rootCerts: []))
                continue
            }
            let key = ctx.certifiedKey
            let state = key.notAfter < now ? "Expired" : (key.notBefore > now ? "NotYetValid" : "Available")
            certificates.append(CertificatesEntry(identity: w.identity.description, state: state, certChain: key.chain.map(cert),
                                                  rootCerts: s.trust.roots.map(cert)))
        }
        func gateway(_ g: GatewayAddress?) -> GatewayEntry? { g.map { GatewayEntry(destination: $0.destinationText, hboneMtlsPort: $0.hboneMtlsPort) } }
        // The merged config lists istiod's in no order.
        workloads = s.config.workloads.sorted { $0.uid < $1.uid }.map { w in
            WorkloadEntry(uid: w.uid, workloadIps: w.workloadIps.map(\.description), waypoint: gateway(w.waypoint),
                          networkGateway: gateway(w.networkGateway), protocol: w.protocol.rawValue, name: w.name, namespace: w.namespace,
                          serviceAccount: w.serviceAccount, workloadName: w.workloadName, workloadType: w.workloadType, canonicalName: w.canonicalName,
                          canonicalRevision: w.canonicalRevision, clusterId: w.clusterId, trustDomain: w.trustDomain,
                          locality: LocalityEntry(region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone), node: w.node,
                          network: w.network.isEmpty ? nil : w.network, status: w.status.rawValue, capacity: w.capacity,
                          hostname: w.hostname, applicationTunnel: ApplicationTunnel(protocol: w.applicationTunnel?.protocol.rawValue ?? "NONE", port: w.applicationTunnel?.port),
                          authorizationPolicies: w.authorizationPolicies,
                          local: w.node == s.settings.node && w.network == s.settings.network, identity: w.identity.description, labels: w.labels,
                          services: w.services.mapValues { ports in Dictionary(uniqueKeysWithValues: ports.map { (String($0.key), Int($0.value)) }) })
        }
        services = s.config.services.sorted { $0.key < $1.key }.map { v in
            var endpoints: [String: EndpointEntry] = [:]
            for w in s.mesh.workloads(listing: v.key) {
                guard let ports = w.services[v.key] else { continue }
                endpoints[w.uid] = EndpointEntry(workloadUid: w.uid, service: v.key, address: w.workloadIps.first?.description,
                                                 port: Dictionary(uniqueKeysWithValues: ports.map { (String($0.key), Int($0.value)) }),
                                                 status: w.status.rawValue)
            }
            let v4 = v.vips.contains(where: \.isIPv4), v6 = v.vips.contains(where: { !$0.isIPv4 })
            return ServiceEntry(name: v.name, namespace: v.namespace, hostname: v.hostname, vips: v.addresses.map(\.description),
                                cidrVips: v.cidrVIPs.isEmpty ? nil : v.cidrVIPs.map(\.description),
                                ports: Dictionary(uniqueKeysWithValues: v.ports.map { (String($0.key), Int($0.value)) }),
                                waypoint: gateway(v.waypoint), endpoints: endpoints, subjectAltNames: v.subjectAltNames.map(\.description),
                                ipFamilies: v.ipFamilies?.rawValue ?? (v4 && v6 ? "Dual" : (v6 ? "IPv6" : "IPv4")),
                                loadBalancer: v.loadBalancer.map { LoadBalancerEntry(routingPreferences: $0.routingPreferences.map(\.rawValue),
                                                                                     mode: $0.mode.rawValue, healthPolicy: $0.healthPolicy.rawValue) },
                                weightedWaypoints: v.weightedWaypoints.isEmpty ? nil : v.weightedWaypoints.compactMap { w in
                                    gateway(w.destination).map { WeightedWaypointEntry(destination: $0, weight: w.weight) } },
                                visibility: v.visibility.rawValue, canonical: v.canonical)
        }
        policies = s.policies.policies.map { p in
            var scope = "Namespace"
            var selector: [String: String]?
            switch p.scope {
            case .global: scope = "Global"
            case .namespace: scope = "Namespace"
            case let .workloadSelector(labels):
                scope = "WorkloadSelector"
                selector = labels
            case .selectedByWorkloads: scope = "WorkloadSelector"
            }
            return PolicyEntry(name: p.name, namespace: p.namespace, scope: scope, action: p.action.rawValue,
                               rules: p.rules.map { $0.map { $0.map(MatchEntry.init) } }, selector: selector, dryRun: p.dryRun, warnings: p.warnings)
        }
        workloadState = [:]
        for (uid, pod) in s.pods {
            let w = pod.workload
            workloadState[uid] = WorkloadStateEntry(state: s.identities[w.identity] == nil ? "Pending" : "Up",
                                                    info: WorkloadInfoEntry(name: w.name, namespace: w.namespace, trustDomain: w.trustDomain,
                                                                            serviceAccount: w.serviceAccount))
        }
    }

    /// A hex serial (any length) in decimal, as ztunnel prints serial numbers.
    static func decimal(fromHex hex: String) -> String {
        var digits: [UInt8] = [0]   // little-endian base 10
        for c in hex.lowercased() {
            guard let v = c.hexDigitValue else { continue }
            var carry = v
            for i in digits.indices {
                let x = Int(digits[i]) * 16 + carry
                digits[i] = UInt8(x % 10)
                carry = x / 10
            }
            while carry > 0 {
                digits.append(UInt8(carry % 10))
                carry /= 10
            }
        }
        while digits.count > 1 && digits.last == 0 { digits.removeLast() }
        return String(digits.reversed().map { Character(String($0)) })
    }

    /// As a JSON object, to merge hbone's other sections into.
    func jsonObject() -> [String: Any] {
        let encoder = JSONEncoder()
        guard let data = try? encoder.encode(self), let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            Bug.report("config dump does not encode")
            return [:]
        }
        return obj
    }
}
