import Foundation
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEAuthz
import HBONETLS
import HBONEEventLoop
import Atomics

/// Everything a worker needs to route and secure connections, immutable and shared read-only by
/// all loops. A change builds a new snapshot, posted to every loop.
public final class ProxyState: Sendable {
    public let config: ProxyConfig
    public let trust: TrustBundle
    public let policies: PolicySet
    /// Names `policies`: the same while a reload keeps the same policies (and root namespace), a new
    /// one for every set built. An open tunnel judged under this generation, against a workload
    /// that did not change, has its decision already (`Worker.recheckPolicies`).
    public let policyGeneration: Int
    private static let policyGenerations = ManagedAtomic<Int>(0)
    /// Per local identity: server and client contexts, built once.
    public let identities: [SPIFFEID: IdentityContexts]
    /// Workloads and VIPs by address, on this proxy's network only.
    public let workloadsByIP: [IPAddress: Workload]
    public let localWorkloadsByIP: [IPAddress: Workload]
    /// The service at each VIP and hostname for a client whose namespace is not known (of several:
    /// the canonical one, else the first).
    public let servicesByVIP: [IPAddress: Service]
    public let servicesByHostname: [String: Service]
    /// VIPs and hostnames whose service depends on the client's namespace: several services share
    /// them (ServiceEntries in several namespaces), or one is visible to its namespace only.
    /// Usually empty, so a connection pays one `isEmpty` for them (`ProxyState+ServiceChoice`).
    public let sharedServicesByVIP: [IPAddress: [Service]]
    public let sharedServicesByHostname: [String: [Service]]
    /// Services' CIDR VIPs on this network, for addresses that are no workload and no exact VIP.
    public let servicesByCIDR: CIDRTable<Service>
    /// What follows `*.` in wildcard hostnames (ServiceEntries): the DNS proxy tries a name's
    /// wildcards only when there are some.
    public let wildcardHostnameSuffixes: Set<String>
    /// By `Service.key` (`namespace/hostname`): how a waypoint names its service.
    public let servicesByKey: [String: Service]
    /// Each service's endpoints, by `Service.key`: workloads listing it in `services` that are on
    /// this network with an address, or on another network behind a gateway (istiod's stand-in
    /// for a remote network's endpoints has no address), as its load balancing groups them.
    /// Built once: resolving a VIP used to scan every workload of the mesh per connection.
    public let endpointSets: [String: EndpointSet]
    /// The `baggage` value of each local workload (and handed-over pod), by UID: sent on every
    /// CONNECT it makes and every 200 it answers, so built once per snapshot.
    let localBaggage: [String: String]
    /// For services that also have endpoints behind gateways: their endpoints on this network only
    /// (a gateway, or a waypoint in front of a pod addressed by IP, is never reached through
    /// another gateway).
    public let localEndpointSets: [String: EndpointSet]
    /// Keys of services that have endpoints on other networks (never dialled here: they are
    /// reached through network gateways), so a refusal can say why.
    public let servicesWithEndpointsElsewhere: Set<String>
    /// The workloads network gateways name by address (`network/ip`), on any network.
    public let networkGateways: [NetworkAddress: Workload]
    /// Ports of this proxy, which no tunnel may target (no self-loops).
    public let ownPorts: Set<UInt16>
    /// Addresses that reach this proxy (for the self-call guard): this host's interface addresses
    /// when the snapshot was built, and the IPs its configured listeners bind. Both built once per
    /// snapshot, not per connection.
    public let ownAddresses: Set<IPAddress>
    /// The trust domain and its aliases: inbound peers must belong to one. Built once per
    /// snapshot, as every inbound handshake is checked against it.
    public let trustedDomains: Set<String>
    public let version: Int
    /// Why each local identity without a certificate has none (the CA's refusal, a bad file, ...):
    /// readiness and refused connections say it.
    public let certificateProblems: [SPIFFEID: String]
    /// In-pod mode: the pods the CNI agent handed over, by UID.
    public let pods: [String: InPodWorkload]
    /// The index the tables above come from; the next xDS push changes a copy of it.
    public let mesh: MeshIndex

    public struct IdentityContexts: Sendable {
        public let server: TLSContext
        public let client: TLSContext
        public var certifiedKey: CertifiedKey { server.certifiedKey }
    }

    public var settings: Settings { config.settings }
    /// `settings.packetMark`, read once per snapshot: read per connection through this class, it
    /// copied the whole settings struct (about 30 reference counts; scripts/bench-tunnel-cost.sh).
    public let packetMark: Int32?

    /// `previous`: an identity whose SVID and trust bundle are those of `previous` keeps its TLS
    /// contexts (two `SSL_CTX` per identity were built again on every xDS push).
    /// `mesh`: the index of `config`'s workloads and services, kept up to date by the caller (nil:
    /// built here from `config`).
    public init(config: ProxyConfig, trust: TrustBundle, certificates: [SPIFFEID: CertifiedKey], version: Int,
                problems: [SPIFFEID: String] = [:], pods: [String: InPodWorkload] = [:], previous: ProxyState? = nil,
                mesh: MeshIndex? = nil) throws(TLSError) {
        self.config = config
        packetMark = config.settings.packetMark
        self.certificateProblems = problems
        self.pods = pods
        self.trust = trust
        self.version = version
        trustedDomains = config.settings.trustedDomains
        if let previous, previous.policies.rootNamespace == config.settings.rootNamespace, previous.config.policies == config.policies {
            policies = previous.policies
            policyGeneration = previous.policyGeneration
        } else {
            policies = PolicySet(config.policies, rootNamespace: config.settings.rootNamespace)
            policyGeneration = Self.policyGenerations.wrappingIncrementThenLoad(ordering: .relaxed)
        }
        var identities: [SPIFFEID: IdentityContexts] = [:]
        for (id, key) in certificates {
            if let kept = previous?.identities[id], kept.server.trust === trust, kept.certifiedKey.isSame(as: key) {
                identities[id] = kept
                continue
            }
            identities[id] = IdentityContexts(
                server: try TLSContext(role: .server, certifiedKey: key, trust: trust),
                client: try TLSContext(role: .client, certifiedKey: key, trust: trust))
        }
        self.identities = identities
        // Kept from the caller's index when it is of this proxy's network and node (an xDS push
        // changed it in place); else built from the config's lists.
        let mesh = mesh.flatMap { $0.network == config.settings.network && $0.node == config.settings.node ? $0 : nil } ?? MeshIndex(config: config)
        self.mesh = mesh
        workloadsByIP = mesh.workloadsByIP
        localWorkloadsByIP = mesh.localWorkloadsByIP
        servicesWithEndpointsElsewhere = mesh.servicesWithEndpointsElsewhere
        networkGateways = mesh.networkGateways
        servicesByVIP = mesh.servicesByVIP
        servicesByHostname = mesh.servicesByHostname
        sharedServicesByVIP = mesh.sharedServicesByVIP
        sharedServicesByHostname = mesh.sharedServicesByHostname
        servicesByCIDR = mesh.servicesByCIDR
        wildcardHostnameSuffixes = mesh.wildcardHostnameSuffixes
        servicesByKey = mesh.servicesByKey
        endpointSets = mesh.endpointSets
        localEndpointSets = mesh.localEndpointSets
        var baggage: [String: String] = [:]
        for w in config.localWorkloads + pods.values.map(\.workload) { baggage[w.uid] = Baggage(w).headerValue(workloadType: w.workloadType) }
        localBaggage = baggage
        let l = config.settings.listen
        let listeners = [l.inbound, l.inboundPlaintext, l.outboundCapture, l.socks5, l.admin, l.metrics, l.readiness].compactMap { $0 }
        ownPorts = Set(listeners.map(\.port) + [l.inboundPort])
        ownAddresses = Set(Socket.interfaceAddresses() + listeners.map(\.ip))
    }

    /// A state and the certificates it could not load.
    public typealias Loaded = (state: ProxyState, missing: [String])

    /// Loads the trust bundle and every local workload's SVID from disk. Missing SVIDs are reported,
    /// not fatal: readiness stays pending for them.
    /// `previous`: an SVID that fails to load now (say, a rotation caught half-written) keeps the
    /// one in use, so a reload never takes a working identity away.
    /// `mesh`: as for `init`.
    public static func load(config: ProxyConfig, version: Int, previous: ProxyState? = nil, issued: IssuedCertificates? = nil,
                            pods: [String: InPodWorkload] = [:], mesh: MeshIndex? = nil) throws(ProxyError) -> Loaded {
        let trust: TrustBundle
        let lists = try revocationLists(config.settings.crlPath, previous: previous)
        do {
            if config.settings.rootCertificates.isEmpty {
                // istioCA without a root file: the CA's roots; none yet trusts no peer at all.
                trust = try TrustBundle.reusing(previous?.trust, roots: issued?.roots ?? [], revocationLists: lists, allowEmpty: true)
            } else {
                trust = try TrustBundle.reusing(previous?.trust, roots: TrustBundle.roots(file: config.settings.rootCertificates),
                                                revocationLists: lists)
            }
        } catch {
            throw ProxyError(.internal, .config, "rootCertificates \(config.settings.rootCertificates): \(error.reason)")
        }
        var certs: [SPIFFEID: CertifiedKey] = [:]
        var missing: [String] = []
        let dir: String
        switch config.settings.certificates {
        case .istioCA:
            let now = Date()
            var problems: [SPIFFEID: String] = [:]
            for w in config.certifiedLocalWorkloads where certs[w.identity] == nil && problems[w.identity] == nil {
                if let key = issued?.keys[w.identity] {
                    if let reason = ProxyState.unusable(key, for: w.identity, trust: trust, now: now) {
                        problems[w.identity] = reason
                    } else {
                        certs[w.identity] = key
                    }
                } else {
                    problems[w.identity] = issued?.problems[w.identity] ?? "certificate requested from the Istio CA, not yet issued"
                }
            }
            missing = problems.map { "\($0.key): \($0.value)" }.sorted()
            do {
                return (try ProxyState(config: config, trust: trust, certificates: certs, version: version, problems: problems, pods: pods, previous: previous, mesh: mesh), missing)
            } catch {
                throw ProxyError(.internal, .config, "TLS context: \(error)")
            }
        case let .directory(d):
            dir = d
        case let .ca(issuance):
            certs = try issue(config: config, issuance: issuance, previous: previous, missing: &missing)
            do {
                return (try ProxyState(config: config, trust: trust, certificates: certs, version: version, pods: pods, previous: previous, mesh: mesh), missing)
            } catch {
                throw ProxyError(.internal, .config, "TLS context: \(error)")
            }
        }
        let now = Date()
        for w in config.localWorkloads where certs[w.identity] == nil {
            let path = "\(dir)/\(w.namespace)/\(w.serviceAccount)"
            let problem: String
            do {
                let key = try CertifiedKey.load(directory: path, reusing: previous?.identities[w.identity]?.certifiedKey)
                guard let reason = ProxyState.unusable(key, for: w.identity, trust: trust, now: now) else {
                    certs[w.identity] = key
                    continue
                }
                problem = "\(path): \(reason)"
            } catch {
                problem = error.reason
            }
            if let old = previous?.identities[w.identity]?.certifiedKey {
                log.warn("keeping the current certificate: the new one is not usable", ["identity": w.identity.description, "error": problem,
                                                                                       "current_expires": "\(old.notAfter)"])
                certs[w.identity] = old
            } else {
                log.warn("no usable certificate", ["identity": w.identity.description, "error": problem])
                missing.append("\(w.identity): \(problem)")
            }
        }
        do {
            return (try ProxyState(config: config, trust: trust, certificates: certs, version: version, pods: pods, previous: previous, mesh: mesh), missing)
        } catch {
            throw ProxyError(.internal, .config, "TLS context: \(error)")
        }
    }
}

extension ProxyState {
    /// The lists at `path` (nil: revocation is not checked). A file not there yet revokes nothing
    /// (a ConfigMap may be mounted later, as ztunnel allows); one that cannot be read or parsed
    /// fails the load: at start-up the proxy exits, on a reload the last good snapshot stays.
    static func revocationLists(_ path: String?, previous: ProxyState?) throws(ProxyError) -> [RevocationList]? {
        guard let path else { return nil }
        guard FileManager.default.fileExists(atPath: path) else {
            // Said once: when it goes missing, not on every reload while it stays missing.
            if previous?.trust.revocationLists?.isEmpty != true {
                log.warn("revocation list file not found: nothing is revoked until it appears", ["path": path])
            }
            return []
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProxyError(.internal, .config, "crlPath \(path): cannot be read")
        }
        do {
            return try RevocationList.parse([UInt8](data))
        } catch {
            throw ProxyError(.internal, .config, "crlPath \(path): \(error.reason)")
        }
    }

    /// A new SVID may start this much in the future (clocks of the issuer and this node differ).
    static let clockSkewAllowance: TimeInterval = 60

    /// Why `key` must not be presented as `identity` (nil: it may): an SVID is installed only if it
    /// is the workload's identity, currently valid (give or take the skew allowance) and chains to
    /// the current bundle. The key matching the leaf is checked when the key is built.
    static func unusable(_ key: CertifiedKey, for identity: SPIFFEID, trust: TrustBundle, now: Date) -> String? {
        if key.identity != identity { return "holds \(key.identity), not \(identity)" }
        if key.notAfter <= now { return "expired at \(key.notAfter)" }
        if key.notBefore > now.addingTimeInterval(clockSkewAllowance) { return "not valid before \(key.notBefore)" }
        // Judged at a moment inside its validity, so only the chain decides here.
        if let reason = trust.verify(chain: key.chain, at: max(now, key.notBefore)) {
            return "does not chain to the trust bundle: \(reason)"
        }
        return nil
    }
}

extension ProxyState {
    /// When an issued SVID should be renewed: after `renewAt` of its lifetime.
    static func renewalTime(_ key: CertifiedKey, _ issuance: Settings.CAIssuance) -> Date {
        let life = key.notAfter.timeIntervalSince(key.notBefore)
        return key.notBefore.addingTimeInterval(life * issuance.renewAt)
    }

    /// The earliest renewal among issued SVIDs (nil when SVIDs come from files).
    public var nextRenewal: Date? {
        guard case let .ca(issuance) = settings.certificates else { return nil }
        return identities.values.map { ProxyState.renewalTime($0.certifiedKey, issuance) }.min()
    }

    /// Issues (or keeps) the SVID of every local workload from the cacerts directory. An SVID is kept
    /// while it was issued by the current intermediate and is not due for renewal.
    static func issue(config: ProxyConfig, issuance: Settings.CAIssuance, previous: ProxyState?, missing: inout [String]) throws(ProxyError) -> [SPIFFEID: CertifiedKey] {
        let dir = issuance.directory
        let caCert: Certificate, caKey: PrivateKey, caChain: [Certificate]
        do {
            // Istio's cacerts layout, or the kubernetes.io/tls one cert-manager writes (tls.crt: the
            // CA and any intermediates above it, tls.key, ca.crt: the root), as istiod reads both.
            let layout = Settings.CAIssuance.files(in: dir)
            guard let c = FileManager.default.contents(atPath: dir + "/" + layout.cert), let k = FileManager.default.contents(atPath: dir + "/" + layout.key) else {
                throw TLSError(code: "ca", reason: "cannot read ca-cert.pem and ca-key.pem (or tls.crt and tls.key) in \(dir)")
            }
            let certs = try Certificate.parsePEMChain([UInt8](c))
            caCert = certs[0]
            caKey = try PrivateKey.parsePEM([UInt8](k))
            guard caKey.matches(caCert), caCert.isCA else { throw TLSError(code: "ca", reason: "\(layout.key) does not belong to a CA \(layout.cert)") }
            // Intermediates between ours and the root, from cert-chain.pem (the root itself is never sent).
            if let chainName = layout.chain, let chainFile = FileManager.default.contents(atPath: dir + "/" + chainName) {
                caChain = try Certificate.parsePEMChain([UInt8](chainFile)).filter { !$0.isSelfSigned }
            } else {
                caChain = certs.filter { !$0.isSelfSigned }
            }
        } catch {
            throw ProxyError(.internal, .config, "certificates.ca \(dir): \(error)")
        }
        var out: [SPIFFEID: CertifiedKey] = [:]
        let now = Date()
        for w in config.localWorkloads where out[w.identity] == nil {
            if let old = previous?.identities[w.identity]?.certifiedKey, old.chain.count > 1, old.chain[1].der == caCert.der,
               now < renewalTime(old, issuance) {
                out[w.identity] = old
                continue
            }
            do {
                let (leaf, key) = try CertificateAuthority.issueSVID(w.identity, ca: caCert, caKey: caKey, lifetime: issuance.ttl)
                let chain = [leaf] + (caChain.first?.der == caCert.der ? caChain : [caCert] + caChain)
                out[w.identity] = try CertifiedKey(chain: chain, key: key)
                log.info("issued SVID", ["identity": w.identity.description, "serial": leaf.serialHex, "expires": "\(leaf.notAfter)"])
            } catch {
                if let old = previous?.identities[w.identity]?.certifiedKey, old.notAfter > now { out[w.identity] = old }
                missing.append("\(w.identity): cannot issue: \(error.reason)")
            }
        }
        return out
    }
}
