import Testing
import HBONECore
import HBONEConfig
import HBONEIdentity
import HBONETestSupport
@testable import HBONEProxy

/// The mesh index kept up to date change by change must hold exactly the tables a build from
/// nothing gives. The reference below builds them the way `ProxyState` did before the index: one
/// pass over the merged config's lists in order, the later overwriting the earlier.
@Suite struct MeshIndexTests {
    static let network = "", node = "east"

    /// Random pushes (adds, replacements, removals; workloads and services sharing a few addresses,
    /// hostnames and keys so that they collide) over a file's worth to start with; after each push
    /// the kept index is compared with the reference built from the same entries.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func changeByChangeEqualsABuildFromNothing(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        var workloads: [MeshSourceID: Workload] = [:], services: [MeshSourceID: Service] = [:]
        for i in 0..<6 {
            workloads[.file(i)] = try Self.workload(&random, uid: "file-\(i)")
            services[.file(i)] = Self.service(&random, name: "file-\(i)")
        }
        var mesh = MeshIndex(network: Self.network, node: Self.node)
        mesh.apply(workloads: workloads.map { ($0.key, $0.value) }, services: services.map { ($0.key, $0.value) })
        try Self.expectSame(mesh, workloads, services, "start")
        for push in 0..<120 {
            var wChanges: [(MeshSourceID, Workload?)] = [], sChanges: [(MeshSourceID, Service?)] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                let name = "xds-\(Int.random(in: 0..<25, using: &random))"
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<5:
                    let w = try Self.workload(&random, uid: name)
                    wChanges.append((.xds(name), w))
                    sChanges.append((.xds(name), nil))   // one resource name is a workload or a service
                case 5..<8:
                    wChanges.append((.xds(name), nil))
                    sChanges.append((.xds(name), Self.service(&random, name: name)))
                default:
                    wChanges.append((.xds(name), nil))
                    sChanges.append((.xds(name), nil))
                }
            }
            // A name changed twice in one push: the last change stands (as the store's final value).
            var lastW: [MeshSourceID: Workload?] = [:], lastS: [MeshSourceID: Service?] = [:]
            for (id, w) in wChanges { lastW[id] = w }
            for (id, s) in sChanges { lastS[id] = s }
            mesh.apply(workloads: lastW.map { ($0.key, $0.value) }, services: lastS.map { ($0.key, $0.value) })
            for (id, w) in lastW { workloads[id] = w }
            for (id, s) in lastS { services[id] = s }
            try Self.expectSame(mesh, workloads, services, "push \(push)")
            // And built from nothing (another path: every table at once from the claims).
            var fresh = MeshIndex(network: Self.network, node: Self.node)
            fresh.apply(workloads: workloads.map { ($0.key, $0.value) }, services: services.map { ($0.key, $0.value) })
            try Self.expectSame(fresh, workloads, services, "push \(push), from nothing")
        }
    }

    /// Of two workloads claiming one address, the later in the config's order holds it, and when
    /// it goes the earlier holds it again (a pod's IP given to a new pod before the old one left).
    @Test func anAddressClaimedTwiceGoesToTheLaterAndBackWhenItLeaves() throws {
        var random = SplitMix(seed: 99)
        var old = try Self.workload(&random, uid: "old")
        old.workloadIps = [IPAddress("10.0.0.1")!]
        old.network = Self.network
        var new = old
        new.uid = "new"
        var mesh = MeshIndex(network: Self.network, node: Self.node)
        mesh.apply(workloads: [(.xds("b"), new), (.xds("a"), old)], services: [])
        #expect(mesh.workloadsByIP[IPAddress("10.0.0.1")!]?.uid == "new")
        mesh.apply(workloads: [(.xds("b"), nil)], services: [])
        #expect(mesh.workloadsByIP[IPAddress("10.0.0.1")!]?.uid == "old")
        mesh.apply(workloads: [(.xds("a"), nil)], services: [])
        #expect(mesh.workloadsByIP.isEmpty)
    }

    // MARK: - the reference

    struct Reference {
        var byIP: [IPAddress: Workload] = [:], local: [IPAddress: Workload] = [:]
        var vips: [IPAddress: Service] = [:], hosts: [String: Service] = [:]
        var sharedVIPs: [IPAddress: [Service]] = [:], sharedHosts: [String: [Service]] = [:]
        var keys: [String: Service] = [:], cidrs: [String] = [], wildcards: Set<String> = []
        var endpoints: [String: [String]] = [:], localEndpoints: [String: [String]] = [:], elsewhere: Set<String> = []
        var gateways: [NetworkAddress: String] = [:]
        var remoteVIPs: [NetworkAddress: Service] = [:]

        init(_ workloadList: [Workload], _ serviceList: [Service]) {
            var lists: [String: [Workload]] = [:], gatewayAddresses: Set<NetworkAddress> = []
            for w in workloadList {
                if case let .address(net, ip)? = w.networkGateway?.destination { gatewayAddresses.insert(NetworkAddress(network: net, ip: ip)) }
            }
            for w in workloadList {
                for ip in w.workloadIps where gatewayAddresses.contains(NetworkAddress(network: w.network, ip: ip)) {
                    gateways[NetworkAddress(network: w.network, ip: ip)] = w.uid
                }
                guard w.network == MeshIndexTests.network else {
                    elsewhere.formUnion(w.services.keys)
                    if w.networkGateway != nil { for key in w.services.keys { lists[key, default: []].append(w) } }
                    continue
                }
                for ip in w.workloadIps {
                    byIP[ip] = w
                    if w.node == MeshIndexTests.node { local[ip] = w }
                }
                guard !w.workloadIps.isEmpty || !w.hostname.isEmpty else { continue }
                for key in w.services.keys { lists[key, default: []].append(w) }
            }
            var vipLists: [IPAddress: [Service]] = [:], hostLists: [String: [Service]] = [:], remoteLists: [NetworkAddress: [Service]] = [:]
            for s in serviceList {
                for a in s.addresses where a.network == MeshIndexTests.network { vipLists[a.ip, default: []].append(s) }
                for a in s.addresses where a.network != MeshIndexTests.network { remoteLists[a, default: []].append(s) }
                for c in s.cidrVIPs where c.network == MeshIndexTests.network { cidrs.append("\(c.cidr) \(s.name)") }
                keys[s.key] = s
                hostLists[s.hostname, default: []].append(s)
            }
            vips = vipLists.compactMapValues { ProxyState.bestService(among: $0, forNamespace: nil) }
            remoteVIPs = remoteLists.compactMapValues { ProxyState.bestService(among: $0, forNamespace: nil) }
            hosts = hostLists.compactMapValues { ProxyState.bestService(among: $0, forNamespace: nil) }
            sharedVIPs = vipLists.filter(ProxyState.dependsOnTheClient)
            sharedHosts = hostLists.filter(ProxyState.dependsOnTheClient)
            wildcards = Set(hostLists.keys.filter { $0.hasPrefix("*.") }.map { String($0.dropFirst(2)) })
            for (key, list) in lists {
                endpoints[key] = list.map(\.uid)
                if list.contains(where: { $0.network != MeshIndexTests.network }) {
                    localEndpoints[key] = list.filter { $0.network == MeshIndexTests.network }.map(\.uid)
                }
            }
        }
    }

    static func expectSame(_ mesh: MeshIndex, _ workloads: [MeshSourceID: Workload], _ services: [MeshSourceID: Service],
                           _ when: String) throws {
        let ref = Reference(workloads.sorted { $0.key < $1.key }.map(\.value), services.sorted { $0.key < $1.key }.map(\.value))
        // Compared by names (a failure prints what differs, not every field).
        func names<K>(_ d: [K: Workload]) -> [K: String] { d.mapValues(\.uid) }
        func names<K>(_ d: [K: Service]) -> [K: String] { d.mapValues(\.name) }
        func names<K>(_ d: [K: [Service]]) -> [K: [String]] { d.mapValues { $0.map(\.name) } }
        #expect(names(mesh.workloadsByIP) == names(ref.byIP), "\(when): workloads by IP")
        #expect(names(mesh.localWorkloadsByIP) == names(ref.local), "\(when): local workloads by IP")
        #expect(names(mesh.servicesByVIP) == names(ref.vips), "\(when): services by VIP")
        #expect(names(mesh.servicesByHostname) == names(ref.hosts), "\(when): services by hostname")
        #expect(names(mesh.sharedServicesByVIP) == names(ref.sharedVIPs), "\(when): shared VIPs")
        #expect(names(mesh.sharedServicesByHostname) == names(ref.sharedHosts), "\(when): shared hostnames")
        #expect(names(mesh.servicesByKey) == names(ref.keys), "\(when): services by key")
        #expect(names(mesh.remoteServicesByVIP) == names(ref.remoteVIPs), "\(when): services by VIP on other networks")
        #expect(mesh.workloadsByIP == ref.byIP && mesh.servicesByKey == ref.keys, "\(when): the entries themselves")
        #expect(mesh.servicesByCIDR.entries.map { "\($0.cidr) \($0.value.name)" }.sorted() == ref.cidrs.sorted(), "\(when): CIDR VIPs")
        #expect(mesh.wildcardHostnameSuffixes == ref.wildcards, "\(when): wildcard suffixes")
        #expect(mesh.endpointSets.mapValues { $0.endpoints.map(\.uid).sorted() } == ref.endpoints.mapValues { $0.sorted() }, "\(when): endpoints")
        #expect(mesh.localEndpointSets.mapValues { $0.endpoints.map(\.uid).sorted() } == ref.localEndpoints.mapValues { $0.sorted() }, "\(when): local endpoints")
        #expect(mesh.servicesWithEndpointsElsewhere == ref.elsewhere, "\(when): endpoints elsewhere")
        #expect(mesh.networkGateways.mapValues(\.uid) == ref.gateways, "\(when): network gateways")
        // Endpoints in the config's order (a built set keeps it within each group).
        for (key, set) in mesh.endpointSets where set.groups.count == 1 {
            #expect(set.endpoints.map(\.uid) == ref.endpoints[key], "\(when): order of \(key)'s endpoints")
        }
    }

    // MARK: - random entries over small pools, so that they collide

    static let keys = ["a/one.a.svc", "a/two.a.svc", "b/*.example.com", "b/three.b.svc"]

    static func ip(_ random: inout SplitMix) -> IPAddress {
        Int.random(in: 0..<5, using: &random) == 0 ? IPAddress("fd00::\(Int.random(in: 1...3, using: &random))")!
                                                     : IPAddress("10.0.0.\(Int.random(in: 1...8, using: &random))")!
    }

    static func workload(_ random: inout SplitMix, uid: String) throws -> Workload {
        let remote = Int.random(in: 0..<4, using: &random) == 0
        var services: [String: [UInt16: UInt16]] = [:]
        for key in keys where Int.random(in: 0..<3, using: &random) == 0 { services[key] = [80: 8080] }
        let ips = (0..<Int.random(in: 0...2, using: &random)).map { _ in ip(&random) }
        let gateway = remote && Bool.random(using: &random)
            ? GatewayAddress(destination: .address(network: "", ip: IPAddress("10.0.0.\(Int.random(in: 1...3, using: &random))")!), hboneMtlsPort: 15008)
            : nil
        return Workload(uid: uid, name: uid, namespace: "a", serviceAccount: "sa", trustDomain: "cluster.local",
                        workloadIps: Array(Set(ips)).sorted { $0.description < $1.description }, protocol: .hbone,
                        node: Bool.random(using: &random) ? node : "west", clusterId: "Kubernetes", workloadName: uid, canonicalName: uid,
                        canonicalRevision: "latest", labels: [:], services: services,
                        identity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/a/sa/sa"),
                        network: remote ? "far" : network, networkGateway: gateway,
                        hostname: ips.isEmpty && Bool.random(using: &random) ? "db.example.com" : "")
    }

    static func service(_ random: inout SplitMix, name: String) -> Service {
        let key = keys.randomElement(using: &random)!
        let namespace = String(key.prefix { $0 != "/" }), hostname = String(key.drop { $0 != "/" }.dropFirst())
        // A service lists each of its VIPs once (istiod's and the file's do).
        var vips: [NetworkAddress] = []
        for _ in 0..<Int.random(in: 0...2, using: &random) {
            let a = NetworkAddress(network: Int.random(in: 0..<5, using: &random) == 0 ? "far" : network, ip: IPAddress("10.96.0.\(Int.random(in: 1...4, using: &random))")!)
            if !vips.contains(a) { vips.append(a) }
        }
        var s = Service(name: name, namespace: namespace, hostname: hostname, addresses: vips, ports: [80: 8080], subjectAltNames: [])
        s.canonical = Int.random(in: 0..<3, using: &random) == 0
        s.visibility = Int.random(in: 0..<4, using: &random) == 0 ? .namespace : .public
        if Int.random(in: 0..<4, using: &random) == 0 {
            s.cidrVIPs = [NetworkCIDR(network: network, cidr: CIDR("172.16.\(Int.random(in: 0...2, using: &random)).0/24")!)]
        }
        if Bool.random(using: &random) { s.loadBalancer = LoadBalancer(routingPreferences: [.node], mode: .failover) }
        return s
    }
}
