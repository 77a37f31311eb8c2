import Foundation
import HBONECore
import HBONEConfig
import HBONEAuthz
import HBONEIdentity
import HBONEProxy
import HBONEControlPlane
import HBONEEventLoop
import HBONEInPod

/// The proxy's config as the sum of its sources: the file (always; ztunnel's `LOCAL_XDS_PATH`
/// equivalent), what istiod's xDS holds, and the SVIDs the Istio CA issued. Whichever changes, the
/// merged snapshot is rebuilt and applied as a reload; a reload that fails keeps the last good one.
final class ConfigSources: Sendable {
    private struct Inputs {
        var file: ProxyConfig
        /// Counts file reloads: the mesh index is built again from nothing after one.
        var fileGeneration = 0
        var xds: ControlPlane.XDSSnapshot?
        /// Workloads and services (by xDS name) changed since the index was last brought up to date.
        var xdsChanges: Set<String> = []
        var issued: IssuedCertificates?
        /// In-pod mode: pods the CNI agent handed over, by UID.
        var pods: [String: (info: ZDSSession.PodInfo, netns: NetworkNamespace)] = [:]
        /// Pods taken over and given up (ztunnel's `workload_manager_proxies_started/stopped`);
        /// the agent's snapshot after a reconnect re-adds what is already served, which starts nothing.
        var podsStarted: UInt64 = 0
        var podsStopped: UInt64 = 0
    }

    private let inputs: Locked<Inputs>
    /// Applies merged snapshots one at a time, in the order they were built.
    private let applying = NSLock()
    /// The index of the last merged config applied, and the file reload it was built after;
    /// guarded by `applying`.
    private struct Indexed: Sendable {
        var mesh: MeshIndex
        var fileGeneration: Int
    }
    private nonisolated(unsafe) var indexed: Indexed?
    /// The last note about this node's workloads on other networks (logged when it changes, not
    /// on every xDS update).
    private let otherNetworkNote: Locked<String?>

    init(file: ProxyConfig) {
        inputs = Locked(Inputs(file: file, xds: nil, issued: file.settings.certificates == .istioCA ? IssuedCertificates() : nil))
        // The file's own note was logged with its other warnings at load.
        otherNetworkNote = Locked(file.otherNetworkNote)
    }

    var issued: IssuedCertificates? { inputs.withLock { $0.issued } }

    /// Pods taken over and given up since start.
    var podTransitions: (started: UInt64, stopped: UInt64) { inputs.withLock { ($0.podsStarted, $0.podsStopped) } }

    /// File workloads, services and policies first, then xDS's (a resource in both: xDS wins where
    /// the proxy looks things up by address or hostname, and replaces a file policy of the same
    /// namespace/name); then a workload for each handed-over pod that neither knows by UID, made
    /// from what the agent said (local, HBONE, no addresses).
    private static func merge(_ i: Inputs) -> (config: ProxyConfig, pods: [String: InPodWorkload]) {
        var config = i.file
        if let x = i.xds {
            // In no order: the mesh index orders them where it matters (`MeshSourceID`), and the
            // dump sorts what it shows. Sorting 10,000 names cost each push about 2.6 ms.
            config.workloads += x.workloadsByName.values
            config.services += x.servicesByName.values
            config.policies = mergedPolicies(file: config.policies, xds: x.policies)
        }
        var pods: [String: InPodWorkload] = [:]
        guard !i.pods.isEmpty else { return (config, pods) }
        var byUID: [String: Workload] = [:]
        for w in config.workloads { byUID[w.uid] = w }
        let settings = config.settings
        for (uid, pod) in i.pods {
            if let w = byUID[uid] {
                pods[uid] = InPodWorkload(uid: uid, workload: w, netns: pod.netns)
                continue
            }
            let info = pod.info
            let sa = info.serviceAccount.isEmpty ? "default" : info.serviceAccount
            guard let identity = try? SPIFFEID(trustDomain: settings.trustDomain, namespace: info.namespace, serviceAccount: sa) else {
                log.warn("pod with no valid identity ignored", ["pod": uid, "namespace": info.namespace, "service_account": sa])
                continue
            }
            let w = Workload(uid: uid, name: info.name, namespace: info.namespace, serviceAccount: sa, trustDomain: settings.trustDomain,
                             workloadIps: [], protocol: .hbone, node: settings.node, clusterId: "Kubernetes", workloadName: info.name,
                             canonicalName: info.name, canonicalRevision: "latest", labels: [:], services: [:], identity: identity,
                             network: settings.network)
            config.workloads.append(w)
            pods[uid] = InPodWorkload(uid: uid, workload: w, netns: pod.netns)
        }
        return (config, pods)
    }

    /// The mesh index of `i`'s file and xDS workloads and services: the last one applied with the
    /// xDS changes since made to it, or (first, or after the file changed) built from nothing.
    /// Handed-over pods' own workloads are not in it: they have no address and no service.
    private func index(_ i: Inputs) -> MeshIndex {
        let settings = i.file.settings
        if let last = indexed, last.fileGeneration == i.fileGeneration, last.mesh.network == settings.network, last.mesh.node == settings.node {
            guard let x = i.xds, !i.xdsChanges.isEmpty else { return last.mesh }
            var mesh = last.mesh
            let names = i.xdsChanges.sorted()
            mesh.apply(workloads: names.map { (.xds($0), x.workloadsByName[$0]) }, services: names.map { (.xds($0), x.servicesByName[$0]) })
            return mesh
        }
        return MeshIndex(config: i.file, xdsWorkloads: i.xds?.workloadsByName ?? [:], xdsServices: i.xds?.servicesByName ?? [:])
    }

    /// One policy per namespace/name, as Kubernetes holds them: where istiod sends a policy the file
    /// also has, istiod's is the one in force (both would apply the union of two ALLOW policies).
    static func mergedPolicies(file: [Policy], xds: [Policy]) -> [Policy] {
        guard !xds.isEmpty else { return file }
        let fromXDS = Set(xds.map(\.key))
        return file.filter { !fromXDS.contains($0.key) } + xds
    }

    /// The pods held now (the ZDS snapshot reconciles against them).
    var podUIDs: Set<String> { inputs.withLock { Set($0.pods.keys) } }

    /// In-pod changes from the CNI agent.
    func update(pods changes: [ZDSClient.Change]) {
        inputs.withLock { i in
            for change in changes {
                switch change {
                case let .add(info, netns):
                    if i.pods.updateValue((info, netns), forKey: info.uid) == nil { i.podsStarted += 1 }
                case let .remove(uid):
                    if i.pods.removeValue(forKey: uid) != nil { i.podsStopped += 1 }
                }
            }
        }
    }

    func update(file: ProxyConfig) {
        inputs.withLock {
            $0.file = file
            $0.fileGeneration += 1
        }
    }

    func update(xds: ControlPlane.XDSSnapshot) {
        inputs.withLock {
            $0.xds = xds
            $0.xdsChanges.formUnion(xds.changed)
        }
    }
    func update(issued: IssuedCertificates) { inputs.withLock { $0.issued = issued } }

    /// Builds the merged config and reloads the proxy with it; then tells the control plane which
    /// identities local workloads need. Throws what the reload threw (the proxy keeps its state).
    /// `waitForWorkers`: return once every worker applied it (a ZDS ACK means listeners are up).
    func apply(to proxy: Proxy, controlPlane: ControlPlane?, waitForWorkers: Bool = false) throws(ProxyError) {
        applying.lock()
        defer { applying.unlock() }
        // Merged outside the lock (a copy of the inputs is O(1)): the control plane's thread takes
        // it to store each update, and must not wait while a large mesh is put together.
        let taken = inputs.withLock { i in
            defer { i.xdsChanges = [] }
            return i
        }
        let (config, pods) = Self.merge(taken)
        let mesh = index(taken)
        do {
            try proxy.reload(config: config, issued: taken.issued, pods: pods, mesh: mesh, waitForWorkers: waitForWorkers)
        } catch {
            // Not applied: the changes are still to be made to the index last applied.
            inputs.withLock { $0.xdsChanges.formUnion(taken.xdsChanges) }
            throw error
        }
        indexed = Indexed(mesh: mesh, fileGeneration: taken.fileGeneration)
        let note = config.otherNetworkNote
        if otherNetworkNote.withLock({ last in defer { last = note }; return last != note }), let note {
            log.warn("config", ["detail": note])
        }
        controlPlane?.want(identities: Set(config.certifiedLocalWorkloads.map(\.identity)))
    }
}
