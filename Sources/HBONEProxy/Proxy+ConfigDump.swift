import Foundation
import HBONECore
import HBONEConfig
import HBONEAuthz
import HBONETLS

extension Proxy {
    /// The admin `config_dump`: workloads, services, policies and certificates in ztunnel's shape
    /// (`ConfigDump`), then the effective settings and each status source's sections.
    public func configDump(version: String) -> [String: Any] {
        let s = state
        let l = s.settings.listen
        let t = s.settings.timeouts
        let settings: [String: Any] = [
            "node": s.settings.node, "network": s.settings.network, "trustDomain": s.settings.trustDomain, "trustDomainAliases": s.settings.trustDomainAliases,
            "rootCertificates": s.settings.rootCertificates, "rootNamespace": s.settings.rootNamespace,
            "workers": workers, "authorizationPolicies": s.settings.authorizationPolicies,
            "listen": ["inboundPort": Int(l.inboundPort), "inbound": l.inbound?.description as Any, "inboundPlaintext": l.inboundPlaintext?.description as Any,
                       "outboundCapture": l.outboundCapture?.description as Any, "socks5": l.socks5?.description as Any,
                       "admin": l.admin?.description as Any, "metrics": l.metrics?.description as Any, "readiness": l.readiness?.description as Any],
            "timeouts": ["handshake": "\(t.handshake)", "connect": "\(t.connect)", "idle": t.idle.map { "\($0)" } as Any,
                         "keepaliveInterval": "\(t.keepaliveInterval)", "keepaliveTimeout": "\(t.keepaliveTimeout)", "drain": "\(t.drain)"],
            "pool": ["maxStreamsPerConnection": s.settings.pool.maxStreamsPerConnection, "idleTimeout": "\(s.settings.pool.idleTimeout)"],
            "ipv6Enabled": s.settings.ipv6Enabled,
            "tcpKeepalive": ["enabled": s.settings.tcpKeepalive.enabled, "time": "\(s.settings.tcpKeepalive.time)",
                             "interval": "\(s.settings.tcpKeepalive.interval)", "probes": s.settings.tcpKeepalive.probes,
                             "userTimeout": s.settings.tcpKeepalive.userTimeout],
            "h2": ["streamWindow": s.settings.h2.streamWindow, "connectionWindow": s.settings.h2.connectionWindow,
                   "maxConcurrentStreams": s.settings.h2.maxConcurrentStreams],
            // ztunnel's `dnsProxy` and `dnsProxyAddr`, with the rest of hbone's DNS settings.
            "dnsProxy": s.settings.dnsEnabled,
            "dns": ["address": s.settings.dnsAddress?.description as Any,
                    "clusterDomain": s.settings.dns.clusterDomain, "upstreams": s.settings.dns.upstreams.map(\.description),
                    "upstreamTimeout": "\(s.settings.dns.upstreamTimeout)"],
        ]
        var dump = ConfigDump(state: s).jsonObject()
        dump["version"] = version
        dump["configVersion"] = s.version
        dump["configFile"] = s.config.file
        dump["config"] = settings
        if let failure = lastReloadFailure {
            dump["lastReloadFailure"] = ["at": ISO8601DateFormatter().string(from: failure.at), "reason": failure.reason,
                                         "failures": reloadFailures.load(ordering: .relaxed)] as [String: Any]
        }
        for source in attachedStatus {
            for (key, value) in source.configDump() { dump[key] = value }
        }
        if let path = s.settings.crlPath {
            // What is in force: each list's issuer, how many it revokes, and when it goes stale.
            let iso = ISO8601DateFormatter()
            dump["crl"] = ["path": path, "lists": (s.trust.revocationLists ?? []).map { list -> [String: Any] in
                ["issuer": list.issuer, "revoked": list.revokedCount, "nextUpdate": list.nextUpdate.map { iso.string(from: $0) } as Any]
            }] as [String: Any]
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
