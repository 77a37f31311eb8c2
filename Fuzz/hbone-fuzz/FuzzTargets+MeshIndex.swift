import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEXDS
import HBONEXDSProto

/// The mesh index kept change by change against one built from nothing (differential): the first
/// half of a response's resources, then a second response of the other half (a name in both is
/// replaced) removing every third name of the first and those the response removes.
extension FuzzTargets {
    static func meshIndex(_ response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) {
        guard response.typeURL == XDSConversion.addressType, !response.resources.isEmpty else { return }
        var store = XDSStore(nodeID: "ztunnel~1.1.1.1~p.ns~ns.svc.cluster.local", metadata: [:])
        let cut = response.resources.count / 2
        var first = response, second = response
        first.resources = Array(response.resources.prefix(cut))
        first.removedResources = []
        second.resources = Array(response.resources.dropFirst(cut))
        second.removedResources = response.removedResources + first.resources.enumerated().filter { $0.offset % 3 == 0 }.map(\.element.name)
        _ = store.apply(first)
        let named = Set(store.workloads.values.map(\.network) + store.services.values.flatMap { $0.addresses.map(\.network) })
        for network in [""] + named.subtracting([""]).sorted().prefix(1) {
            var store = store
            var kept = built(store, network: network)
            let changed = store.apply(second).changedAddresses.sorted()
            kept.apply(workloads: changed.map { (.xds($0), store.workloads[$0]) }, services: changed.map { (.xds($0), store.services[$0]) })
            let fresh = built(store, network: network)
            precondition(summary(kept) == summary(fresh), "the mesh index kept change by change differs from one built from nothing")
        }
    }

    private static func built(_ store: XDSStore, network: String) -> MeshIndex {
        var m = MeshIndex(network: network, node: "node-a")
        m.apply(workloads: store.workloads.map { (.xds($0.key), $0.value) }, services: store.services.map { (.xds($0.key), $0.value) })
        return m
    }

    /// Every table, by uid and name, in a stable order.
    private static func summary(_ m: MeshIndex) -> [String] {
        func lines<K, V>(_ table: String, _ d: [K: V], _ show: (V) -> String) -> [String] {
            d.map { "\(table) \($0.key) \(show($0.value))" }.sorted()
        }
        let uids = { (ws: [Workload]) in ws.map(\.uid).joined(separator: ",") }
        return lines("ip", m.workloadsByIP, \.uid) + lines("local", m.localWorkloadsByIP, \.uid)
            + lines("vip", m.servicesByVIP, \.name) + lines("host", m.servicesByHostname, \.name)
            + lines("shared-vip", m.sharedServicesByVIP) { $0.map(\.name).joined(separator: ",") }
            + lines("shared-host", m.sharedServicesByHostname) { $0.map(\.name).joined(separator: ",") }
            + lines("key", m.servicesByKey, \.name) + lines("remote-vip", m.remoteServicesByVIP, \.name)
            + lines("endpoints", m.endpointSets) { uids($0.endpoints) } + lines("local-endpoints", m.localEndpointSets) { uids($0.endpoints) }
            + lines("gateway", m.networkGateways, \.uid)
            + m.servicesWithEndpointsElsewhere.sorted().map { "elsewhere \($0)" } + m.wildcardHostnameSuffixes.sorted().map { "wildcard \($0)" }
            + m.servicesByCIDR.entries.map { "cidr \($0.cidr) \($0.value.name)" }
    }
}
