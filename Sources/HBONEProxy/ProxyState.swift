import Foundation
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEAuthz
import HBONETLS

/// Everything a worker needs to route and secure connections, immutable and shared read-only by
/// all loops. A change builds a new snapshot, posted to every loop.
public final class ProxyState: Sendable {
    public let config: ProxyConfig
    public let trust: TrustBundle
    public let policies: PolicySet
    /// Per local identity: server and client contexts, built once.
    public let identities: [SPIFFEID: IdentityContexts]
    public let workloadsByIP: [IPAddress: Workload]
    public let localWorkloadsByIP: [IPAddress: Workload]
    public let servicesByVIP: [IPAddress: Service]
    public let servicesByHostname: [String: Service]
    public let version: Int

    public struct IdentityContexts: Sendable {
        public let server: TLSContext
        public let client: TLSContext
        public var certifiedKey: CertifiedKey { server.certifiedKey }
    }

    public var settings: Settings { config.settings }

    public init(config: ProxyConfig, trust: TrustBundle, certificates: [SPIFFEID: CertifiedKey], version: Int) throws(TLSError) {
        self.config = config
        self.trust = trust
        self.version = version
        policies = PolicySet(config.policies, rootNamespace: config.settings.rootNamespace)
        var identities: [SPIFFEID: IdentityContexts] = [:]
        for (id, key) in certificates {
            identities[id] = IdentityContexts(
                server: try TLSContext(role: .server, certifiedKey: key, trust: trust),
                client: try TLSContext(role: .client, certifiedKey: key, trust: trust))
        }
        self.identities = identities
        var byIP: [IPAddress: Workload] = [:], local: [IPAddress: Workload] = [:]
        for w in config.workloads {
            for ip in w.workloadIps {
                byIP[ip] = w
                if w.node == config.settings.node { local[ip] = w }
            }
        }
        workloadsByIP = byIP
        localWorkloadsByIP = local
        var vips: [IPAddress: Service] = [:], hosts: [String: Service] = [:]
        for s in config.services {
            for v in s.vips { vips[v] = s }
            hosts[s.hostname] = s
        }
        servicesByVIP = vips
        servicesByHostname = hosts
    }

    /// Loads the trust bundle and every local workload's SVID from disk. Missing SVIDs are reported,
    /// not fatal: readiness stays pending for them.
    /// `previous`: an SVID that fails to load now (say, a rotation caught half-written) keeps the
    /// one in use, so a reload never takes a working identity away.
    public static func load(config: ProxyConfig, version: Int, previous: ProxyState? = nil) throws(ProxyError) -> (ProxyState, missing: [String]) {
        let trust: TrustBundle
        do {
            trust = try TrustBundle(file: config.settings.rootCertificates)
        } catch {
            throw ProxyError(.config, "rootCertificates \(config.settings.rootCertificates): \(error.reason)")
        }
        var certs: [SPIFFEID: CertifiedKey] = [:]
        var missing: [String] = []
        guard case let .directory(dir) = config.settings.certificates else { throw ProxyError(.config, "no certificate source") }
        for w in config.localWorkloads where certs[w.identity] == nil {
            let path = "\(dir)/\(w.namespace)/\(w.serviceAccount)"
            do {
                let key = try CertifiedKey(directory: path)
                guard key.identity == w.identity else {
                    if let old = previous?.identities[w.identity]?.certifiedKey { certs[w.identity] = old }
                    else { missing.append("\(w.identity): \(path) holds \(key.identity)") }
                    continue
                }
                certs[w.identity] = key
            } catch {
                if let old = previous?.identities[w.identity]?.certifiedKey {
                    log.warn("keeping the current certificate: the new one does not load", ["identity": w.identity.description, "error": error.reason])
                    certs[w.identity] = old
                } else {
                    missing.append("\(w.identity): \(error.reason)")
                }
            }
        }
        do {
            return (try ProxyState(config: config, trust: trust, certificates: certs, version: version), missing)
        } catch {
            throw ProxyError(.config, "TLS context: \(error)")
        }
    }
}

/// A proxy failure with the side that failed, which feeds `response_flags` and the access log.
public struct ProxyError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case config, downstream, upstream, tls, h2, denied, badRequest, internalError
    }
    public let kind: Kind
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}
