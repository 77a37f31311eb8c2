import Foundation
import HBONECore
import HBONEConfig
import HBONEAuthz
import HBONETLS

extension Proxy {
    /// The admin `config_dump`: workloads, services, policies, certificates, effective settings.
    public func configDump(version: String) -> [String: Any] {
        let s = state
        let iso = ISO8601DateFormatter()
        func certificate(_ c: Certificate) -> [String: Any] {
            ["subject": c.subject, "issuer": c.issuer, "serialNumber": c.serialHex,
             "validFrom": iso.string(from: c.notBefore), "expirationTime": iso.string(from: c.notAfter),
             "uriSANs": c.uriSANs, "key": c.keyDescription]
        }
        let now = Date()
        var certificates: [[String: Any]] = []
        for w in s.config.localWorkloads where !certificates.contains(where: { $0["identity"] as? String == w.identity.description }) {
            guard let ctx = s.identities[w.identity] else {
                certificates.append(["identity": w.identity.description, "state": "Unavailable"])
                continue
            }
            let key = ctx.certifiedKey
            let state = key.notAfter < now ? "Expired" : (key.notBefore > now ? "NotYetValid" : "Available")
            certificates.append(["identity": w.identity.description, "state": state,
                                 "certChain": key.chain.map(certificate), "rootCerts": s.trust.roots.map(certificate)])
        }
        let workloads: [[String: Any]] = s.config.workloads.map { w in
            ["uid": w.uid, "name": w.name, "namespace": w.namespace, "serviceAccount": w.serviceAccount,
             "trustDomain": w.trustDomain, "workloadIps": w.workloadIps.map(\.description), "protocol": w.protocol.rawValue, "authorizationPolicies": w.authorizationPolicies,
             "node": w.node, "local": w.node == s.settings.node, "labels": w.labels, "identity": w.identity.description,
             "network": w.network, "networkGateway": w.networkGateway?.description as Any, "waypoint": w.waypoint?.description as Any,
             "services": Dictionary(uniqueKeysWithValues: w.services.map { ($0.key, Dictionary(uniqueKeysWithValues: $0.value.map { (String($0.key), Int($0.value)) })) })]
        }
        let services: [[String: Any]] = s.config.services.map { v in
            ["name": v.name, "namespace": v.namespace, "hostname": v.hostname, "vips": v.vips.map(\.description),
             "ports": Dictionary(uniqueKeysWithValues: v.ports.map { (String($0.key), Int($0.value)) }),
             "subjectAltNames": v.subjectAltNames.map(\.description), "waypoint": v.waypoint?.description as Any,
             "vipNetworks": Dictionary(uniqueKeysWithValues: v.vipNetworks.map { ($0.key.description, $0.value) })]
        }
        let policies: [[String: Any]] = s.policies.policies.map { p in
            var scope: Any = "Namespace"
            switch p.scope {
            case .global: scope = "Global"
            case .namespace: scope = "Namespace"
            case let .workloadSelector(labels): scope = ["WorkloadSelector": labels]
            case .selectedByWorkloads: scope = "WorkloadSelector"
            }
            return ["name": p.name, "namespace": p.namespace, "action": p.action.rawValue, "scope": scope,
                    "dryRun": p.dryRun, "rules": p.rules.count, "warnings": p.warnings]
        }
        let l = s.settings.listen
        let t = s.settings.timeouts
        let settings: [String: Any] = [
            "node": s.settings.node, "trustDomain": s.settings.trustDomain, "trustDomainAliases": s.settings.trustDomainAliases,
            "rootCertificates": s.settings.rootCertificates, "rootNamespace": s.settings.rootNamespace,
            "workers": workers, "authorizationPolicies": s.settings.authorizationPolicies,
            "listen": ["inboundPort": Int(l.inboundPort), "inbound": l.inbound?.description as Any, "inboundPlaintext": l.inboundPlaintext?.description as Any,
                       "outboundCapture": l.outboundCapture?.description as Any, "socks5": l.socks5?.description as Any,
                       "admin": l.admin?.description as Any, "metrics": l.metrics?.description as Any, "readiness": l.readiness?.description as Any],
            "timeouts": ["handshake": "\(t.handshake)", "connect": "\(t.connect)", "idle": t.idle.map { "\($0)" } as Any,
                         "keepaliveInterval": "\(t.keepaliveInterval)", "keepaliveTimeout": "\(t.keepaliveTimeout)", "drain": "\(t.drain)"],
            "pool": ["maxStreamsPerConnection": s.settings.pool.maxStreamsPerConnection, "idleTimeout": "\(s.settings.pool.idleTimeout)"],
            "h2": ["streamWindow": s.settings.h2.streamWindow, "connectionWindow": s.settings.h2.connectionWindow,
                   "maxConcurrentStreams": s.settings.h2.maxConcurrentStreams],
        ]
        var dump: [String: Any] = ["version": version, "configVersion": s.version, "configFile": s.config.file, "workloads": workloads,
                                   "services": services, "policies": policies, "certificates": certificates, "config": settings]
        for source in attachedStatus {
            for (key, value) in source.configDump() { dump[key] = value }
        }
        if s.settings.inPod != nil {
            dump["pods"] = s.pods.values.sorted { $0.uid < $1.uid }.map { pod -> [String: Any] in
                let w = pod.workload
                let state = s.identities[w.identity] == nil ? "waiting for certificate" : "listening"
                return ["uid": pod.uid, "name": w.name, "namespace": w.namespace, "identity": w.identity.description,
                        "workloadIps": w.workloadIps.map(\.description), "state": state]
            }
        }
        return dump
    }
}
