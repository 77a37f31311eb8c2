import Foundation
import Testing
import SwiftProtobuf
import HBONECore
import HBONEIdentity
import HBONEAuthz
import HBONEConfig
import HBONEXDSProto
@testable import HBONEXDS

/// istiod's resources, built with the generated messages and serialized as istiod sends them,
/// through the store: applied, removed, ACKed, or NACKed with each bad resource's reason.
@Suite struct XDSStoreTests {
    static func workload(_ uid: String, ip: [UInt8] = [10, 1, 0, 20], name: String = "ledger-0", sa: String = "ledger",
                         configure: (inout Istio_Workload_Workload) -> Void = { _ in }) -> Envoy_Service_Discovery_V3_Resource {
        var w = Istio_Workload_Workload()
        w.uid = uid
        w.name = name
        w.namespace = "payments"
        w.serviceAccount = sa
        w.addresses = [Data(ip)]
        w.tunnelProtocol = .hbone
        w.node = "west"
        var ports = Istio_Workload_PortList()
        var p = Istio_Workload_Port()
        p.servicePort = 80
        p.targetPort = 8080
        ports.ports = [p]
        w.services = ["payments/ledger.payments.svc.cluster.local": ports]
        configure(&w)
        var a = Istio_Workload_Address()
        a.workload = w
        return resource(uid, a, type: XDSConversion.addressType)
    }

    static func service(_ key: String, vip: [UInt8] = [10, 96, 0, 20],
                        configure: (inout Istio_Workload_Service) -> Void = { _ in }) -> Envoy_Service_Discovery_V3_Resource {
        var s = Istio_Workload_Service()
        s.name = "ledger"
        s.namespace = "payments"
        s.hostname = "ledger.payments.svc.cluster.local"
        var n = Istio_Workload_NetworkAddress()
        n.address = Data(vip)
        s.addresses = [n]
        var p = Istio_Workload_Port()
        p.servicePort = 80
        p.targetPort = 8080
        s.ports = [p]
        configure(&s)
        var a = Istio_Workload_Address()
        a.service = s
        return resource(key, a, type: XDSConversion.addressType)
    }

    /// A GatewayAddress naming `payments/<hostname>`.
    static func gateway(hostname: String, port: UInt32 = 0) -> Istio_Workload_GatewayAddress {
        var host = Istio_Workload_NamespacedHostname()
        host.namespace = "payments"
        host.hostname = hostname
        var g = Istio_Workload_GatewayAddress()
        g.hostname = host
        g.hboneMtlsPort = port
        return g
    }

    static func denyPort(_ name: String, port: UInt32 = 9000, scope: Istio_Security_Scope = .namespace,
                         configure: (inout Istio_Security_Match) -> Void = { _ in }) -> Envoy_Service_Discovery_V3_Resource {
        var m = Istio_Security_Match()
        m.destinationPorts = [port]
        configure(&m)
        var clause = Istio_Security_Clause()
        clause.matches = [m]
        var rule = Istio_Security_Rule()
        rule.clauses = [clause]
        var a = Istio_Security_Authorization()
        a.name = name
        a.namespace = "payments"
        a.scope = scope
        a.action = .deny
        a.rules = [rule]
        return resource("payments/\(name)", a, type: XDSConversion.authorizationType)
    }

    static func resource(_ name: String, _ message: some SwiftProtobuf.Message, type: String) -> Envoy_Service_Discovery_V3_Resource {
        var r = Envoy_Service_Discovery_V3_Resource()
        r.name = name
        r.version = "1"
        var any = Google_Protobuf_Any()
        any.typeURL = type
        any.value = try! message.serializedData()
        r.resource = any
        return r
    }

    static func response(_ type: String, nonce: String, _ resources: [Envoy_Service_Discovery_V3_Resource], removed: [String] = [])
        -> Envoy_Service_Discovery_V3_DeltaDiscoveryResponse {
        var r = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse()
        r.typeURL = type
        r.nonce = nonce
        r.resources = resources
        r.removedResources = removed
        // Round-trip through the wire, as the client receives it.
        return try! Envoy_Service_Discovery_V3_DeltaDiscoveryResponse(serializedBytes: try! r.serializedData())
    }

    func store() -> XDSStore {
        XDSStore(nodeID: "ztunnel~10.0.0.5~hbone-x.istio-system~istio-system.svc.cluster.local",
                 metadata: ["NODE_NAME": "west", "CLUSTER_ID": "Kubernetes"])
    }

    @Test func workloadsServicesAndPoliciesAreAppliedAndACKed() throws {
        var s = store()
        let uid = "Kubernetes//Pod/payments/ledger-0"
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1",
                                      [Self.workload(uid), Self.service("payments/ledger.payments.svc.cluster.local")]))
        #expect(a.isACK && a.changed)
        #expect(a.reply.responseNonce == "n1" && !a.reply.hasErrorDetail)
        let w = try #require(s.workloads[uid])
        #expect(w.workloadIps == [IPAddress("10.1.0.20")!])
        #expect(w.identity == (try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")))
        #expect(w.protocol == .hbone && w.node == "west")
        #expect(w.services["payments/ledger.payments.svc.cluster.local"] == [80: 8080])
        #expect(s.services["payments/ledger.payments.svc.cluster.local"]?.vips == [IPAddress("10.96.0.20")!])
        #expect(!s.synced)
        let p = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n2", [Self.denyPort("deny-9000")]))
        #expect(p.isACK)
        let policy = try #require(s.policies["payments/deny-9000"])
        #expect(policy.action == .deny && policy.scope == .namespace && policy.rules.first?.first?.first?.destinationPorts == [9000])
        #expect(s.synced)
    }

    @Test func aResponseWithBadResourcesAppliesTheGoodOnesAndNACKsEachBadOneWithItsReason() {
        var s = store()
        var corrupt = Self.workload("bad-bytes")
        corrupt.resource.value = Data([0xff, 0xff, 0xff])
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [
            Self.workload("good"),
            Self.workload("five-bytes", ip: [10, 1, 0, 21, 9]),
            corrupt,
            Self.workload("bad-service-key") { $0.services = ["no-slash": Istio_Workload_PortList()] },
            Self.workload("unknown-enum") { $0.tunnelProtocol = .UNRECOGNIZED(7) },
        ]))
        #expect(!a.isACK)
        #expect(s.workloads.keys.sorted() == ["good"])
        let detail = a.reply.errorDetail.message
        #expect(detail.contains("five-bytes: addresses[0] has 5 bytes (want 4 or 16)"), "\(detail)")
        #expect(detail.contains("bad-bytes: cannot decode"), "\(detail)")
        #expect(detail.contains("bad-service-key: services key \"no-slash\" is not <namespace>/<hostname>"), "\(detail)")
        #expect(detail.contains("unknown-enum: unknown tunnel_protocol 7"), "\(detail)")
        #expect(a.rejected.count == 4)
        #expect(s.lastNACK[XDSConversion.addressType]?.nonce == "n1")
        // Only the good one is held: a new stream asks again for the rest.
        let initial = s.initialRequests().first { $0.typeURL == XDSConversion.addressType }
        #expect(initial.map { Array($0.initialResourceVersions.keys) } == ["good"])
    }

    @Test func removedResourcesGoAndANewStreamListsWhatIsHeld() {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.workload("a"), Self.workload("b", ip: [10, 1, 0, 21])]))
        let r = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [], removed: ["a", "never-held"]))
        #expect(r.isACK && r.changed)
        #expect(s.workloads.keys.sorted() == ["b"])
        let requests = s.initialRequests()
        #expect(requests.map(\.typeURL) == XDSStore.types)
        #expect(requests.allSatisfy { $0.resourceNamesSubscribe.isEmpty && $0.node.id.hasPrefix("ztunnel~10.0.0.5~") })
        #expect(Array(requests[0].initialResourceVersions.keys) == ["b"])
        #expect(requests[0].node.metadata.fields["NODE_NAME"]?.stringValue == "west")
    }

    @Test func gatewaysWaypointsAndNetworksAreKept() throws {
        var s = store()
        let w = Self.workload("w") { w in
            w.network = "net-east"
            var gw = Istio_Workload_GatewayAddress()
            var na = Istio_Workload_NetworkAddress()
            na.network = "net-east"
            na.address = Data([192, 0, 2, 7])
            gw.address = na
            w.networkGateway = gw
            w.waypoint = Self.gateway(hostname: "waypoint.payments.svc.cluster.local", port: 15009)
        }
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [w, Self.service("payments/ledger.payments.svc.cluster.local")]))
        #expect(a.isACK, "\(a.reply.errorDetail.message)")
        let kept = try #require(s.workloads["w"])
        #expect(kept.network == "net-east")
        #expect(kept.networkGateway?.description == "net-east/192.0.2.7:15008")
        #expect(kept.waypoint?.description == "payments/waypoint.payments.svc.cluster.local:15009")
    }

    /// What load balancing reads: a service's routing preferences, mode and health policy (and
    /// whether it is the one its hostname names, who may see it, and its weighted waypoints); a
    /// workload's health, locality and capacity (absent: 1; 0 is kept, and means never picked).
    @Test func loadBalancingHealthLocalityAndCapacityAreKept() throws {
        var s = store()
        let key = "payments/ledger.payments.svc.cluster.local"
        let service = Self.service(key) { s in
            var lb = Istio_Workload_LoadBalancing()
            lb.routingPreference = [.network, .region, .zone, .subzone, .node, .cluster]
            lb.mode = .failover
            lb.healthPolicy = .allowAll
            s.loadBalancing = lb
            s.canonical = true
            var canary = Istio_Workload_WeightedWaypoint()
            canary.destination = Self.gateway(hostname: "waypoint-canary.payments.svc.cluster.local")
            canary.weight = 10
            s.weightedWaypoints = [canary]
            s.visibility = .namespace
        }
        let unhealthy = Self.workload("u") { w in
            w.status = .unhealthy
            var l = Istio_Workload_Locality()
            l.region = "us-east1"
            l.zone = "us-east1-b"
            l.subzone = "rack-7"
            w.locality = l
            w.capacity = Google_Protobuf_UInt32Value(3)
            w.workloadType = .cronjob
        }
        let idle = Self.workload("z", ip: [10, 1, 0, 21]) {
            $0.capacity = Google_Protobuf_UInt32Value(0)
            $0.workloadType = .UNRECOGNIZED(9)   // a type newer than this build: a deployment, as ztunnel reads it
        }
        let plain = Self.workload("p", ip: [10, 1, 0, 22])
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [service, unhealthy, idle, plain]))
        #expect(a.isACK, "\(a.reply.errorDetail.message)")
        #expect(s.services[key]?.loadBalancer == LoadBalancer(routingPreferences: [.network, .region, .zone, .subzone, .node, .cluster],
                                                               mode: .failover, healthPolicy: .allowAll))
        #expect(s.services[key]?.canonical == true && s.services[key]?.visibility == .namespace)
        #expect(s.services[key]?.weightedWaypoints.map { "\($0.destination) \($0.weight)" } == ["payments/waypoint-canary.payments.svc.cluster.local:15008 10"])
        let u = try #require(s.workloads["u"])
        #expect(u.status == .unhealthy && u.capacity == 3)
        #expect(u.locality == Locality(region: "us-east1", zone: "us-east1-b", subzone: "rack-7"))
        #expect(s.workloads["z"]?.capacity == 0)
        #expect(u.workloadType == "cronjob" && s.workloads["z"]?.workloadType == "deployment" && s.workloads["p"]?.workloadType == "deployment")
        #expect(s.workloads["p"]?.capacity == 1 && s.workloads["p"]?.status == .healthy)
        #expect(s.workloads["p"]?.locality == Locality())
        let standard = Self.service(key) { $0.loadBalancing = Istio_Workload_LoadBalancing() }
        #expect(s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [standard])).isACK)
        #expect(s.services[key]?.loadBalancer == LoadBalancer())
    }

    /// A preference, mode or policy this proxy does not know (or a weighted waypoint that names
    /// none, or a visibility narrower than it knows) rejects the service with the reason
    /// (as ztunnel does), rather than balancing it some other way than istiod meant.
    @Test(arguments: [
        (0, "load_balancing.routing_preference[1] is not a scope (0)"),
        (1, "load_balancing.routing_preference[1] is not a scope (42)"),
        (2, "unknown load_balancing.mode 9"),
        (3, "unknown load_balancing.health_policy 7"),
        (4, "weighted_waypoints[0] names no waypoint"),
        (5, "unknown visibility 3"),
    ])
    func aLoadBalancingThatIsNotUnderstoodIsRejected(_ which: Int, reason: String) {
        var s = store()
        let key = "payments/ledger.payments.svc.cluster.local"
        let service = Self.service(key) { s in
            var lb = Istio_Workload_LoadBalancing()
            lb.routingPreference = [.network, which == 0 ? .unspecifiedScope : which == 1 ? .UNRECOGNIZED(42) : .zone]
            if which == 2 { lb.mode = .UNRECOGNIZED(9) }
            if which == 3 { lb.healthPolicy = .UNRECOGNIZED(7) }
            s.loadBalancing = lb
            if which == 5 {
                s.loadBalancing = Istio_Workload_LoadBalancing()
                s.visibility = .UNRECOGNIZED(3)
            }
            if which == 4 {
                s.loadBalancing = Istio_Workload_LoadBalancing()
                s.weightedWaypoints = [Istio_Workload_WeightedWaypoint()]
            }
        }
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [service]))
        #expect(!a.isACK && s.services.isEmpty)
        #expect(a.reply.errorDetail.message.contains("\(key): \(reason)"), "\(a.reply.errorDetail.message)")
        let w = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("w") { $0.status = .UNRECOGNIZED(5) }]))
        #expect(!w.isACK && w.reply.errorDetail.message.contains("w: unknown status 5"), "\(w.reply.errorDetail.message)")
    }

    /// A workload's application tunnel (a waypoint behind ztunnel): protocol and port kept, port 0
    /// as none; a port past 65535 or an unknown protocol is NACKed with the reason.
    /// ztunnel's ISTIO_METAJSON_*: the values go to istiod as the JSON values they are, over a
    /// string of the same name.
    @Test func jsonMetadataGoesAsItsValues() {
        let s = XDSStore(nodeID: "n", metadata: ["A": "x", "B": "y"], jsonMetadata: ["LABELS": "{\"app\": \"z\", \"tier\": 1}", "A": "[1, 2]"])
        let fields = s.node.metadata.fields
        #expect(fields["LABELS"]?.structValue.fields["app"]?.stringValue == "z" && fields["LABELS"]?.structValue.fields["tier"]?.numberValue == 1)
        #expect(fields["A"]?.listValue.values.count == 2 && fields["B"]?.stringValue == "y")
    }

    /// A ServiceEntry endpoint with `resolution: DNS`: a workload with a hostname (field 21) and no
    /// address. The field used to be dropped, so the proxy had nothing to connect to.
    @Test func aWorkloadKnownByHostnameKeepsItAndABadHostnameIsRejected() {
        var s = store()
        let api = Self.workload("se") {
            $0.addresses = []
            $0.hostname = "api.example.com"
            $0.tunnelProtocol = .none
        }
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [api]))
        #expect(a.isACK, "\(a.reply.errorDetail.message)")
        #expect(s.workloads["se"]?.hostname == "api.example.com" && s.workloads["se"]?.workloadIps == [])
        for bad in ["*.example.com", "a..b", "with space.example.com", String(repeating: "a", count: 64) + ".com"] {
            let r = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("bad") { $0.addresses = []; $0.hostname = bad }]))
            #expect(!r.isACK && r.reply.errorDetail.message.contains("bad: hostname"), "\(r.reply.errorDetail.message)")
        }
    }

    @Test func anApplicationTunnelIsKeptAndABadOneRejected() {
        var s = store()
        func tunnel(_ p: Istio_Workload_ApplicationTunnel.ProtocolEnum, _ port: UInt32) -> Istio_Workload_ApplicationTunnel {
            var t = Istio_Workload_ApplicationTunnel()
            t.protocol = p
            t.port = port
            return t
        }
        let proxy = Self.workload("wp") { $0.applicationTunnel = tunnel(.proxy, 15088) }
        let plain = Self.workload("np", ip: [10, 1, 0, 21]) { $0.applicationTunnel = tunnel(.none, 0) }
        let without = Self.workload("no", ip: [10, 1, 0, 22])
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [proxy, plain, without]))
        #expect(a.isACK, "\(a.reply.errorDetail.message)")
        #expect(s.workloads["wp"]?.applicationTunnel == ApplicationTunnel(protocol: .proxy, port: 15088))
        #expect(s.workloads["np"]?.applicationTunnel == ApplicationTunnel(protocol: .none, port: nil))
        #expect(s.workloads["no"]?.applicationTunnel == nil)
        for (bad, reason) in [(tunnel(.proxy, 70000), "application_tunnel port 70000 is not a port"),
                              (tunnel(.UNRECOGNIZED(4), 0), "unknown application_tunnel protocol 4")] {
            let r = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("bad", ip: [10, 1, 0, 23]) { $0.applicationTunnel = bad }]))
            #expect(!r.isACK && r.reply.errorDetail.message.contains("bad: \(reason)"), "\(r.reply.errorDetail.message)")
        }
    }

    /// A service two clusters gave the same VIP keeps it once per network (ztunnel's vips are
    /// network addresses): with one network per IP, the last one listed took the other's place.
    @Test func aServiceKeepsTheSameVIPOnEachNetwork() throws {
        var s = store()
        var resource = Self.service("payments/ledger.payments.svc.cluster.local")
        var a = Istio_Workload_Address()
        _ = try a.merge(serializedBytes: resource.resource.value)
        var other = a.service.addresses[0]
        other.network = "net-b"
        a.service.addresses = [a.service.addresses[0], other]
        resource.resource.value = try a.serializedData()
        #expect(s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [resource])).isACK)
        let service = try #require(s.services["payments/ledger.payments.svc.cluster.local"])
        #expect(service.addresses.map(\.description) == ["/10.96.0.20", "net-b/10.96.0.20"])
        #expect(service.vip(on: "") == IPAddress("10.96.0.20")! && service.vip(on: "net-b") == IPAddress("10.96.0.20")! && service.vip(on: "net-c") == nil)
    }

    /// A VIP with a prefix length is a CIDR VIP (a ServiceEntry's block); the full length, or none,
    /// is one host. Before, the length was not read at all: the block's first address became a
    /// host VIP and the rest of the block went around the service.
    @Test func aVIPWithAPrefixLengthIsABlock() throws {
        func vip(_ bytes: [UInt8], _ length: UInt32?) -> Istio_Workload_NetworkAddress {
            var n = Istio_Workload_NetworkAddress()
            n.address = Data(bytes)
            if let length { n.length = length }
            return n
        }
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 8, 0, 0]
        var s = store()
        let ok = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.service("payments/ledger.payments.svc.cluster.local") {
            $0.addresses = [vip([10, 9, 0, 0], 16), vip([10, 96, 0, 20], 32), vip([10, 96, 0, 21], nil), vip(mapped, 120),
                            vip([0xfd, 0, 0, 9] + [UInt8](repeating: 0, count: 12), 32)]
        }]))
        #expect(ok.isACK, "\(ok.reply.errorDetail.message)")
        let service = try #require(s.services["payments/ledger.payments.svc.cluster.local"])
        #expect(service.addresses.map(\.description) == ["/10.96.0.20", "/10.96.0.21"])
        #expect(service.cidrVIPs.map(\.description) == ["/10.9.0.0/16", "/10.8.0.0/24", "/fd00:9::/32"])
        // Kubernetes' ipFamilyPolicy comes along (AUTOMATIC: what the VIPs show).
        #expect(service.ipFamilies == nil)
        for (families, expected) in [(Istio_Workload_IPFamilies.ipv4Only, Service.IPFamilies.ipv4), (.ipv6Only, .ipv6), (.dual, .dual)] {
            var u = store()
            #expect(u.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.service("payments/ledger.payments.svc.cluster.local") {
                $0.ipFamilies = families
            }])).isACK)
            #expect(u.services["payments/ledger.payments.svc.cluster.local"]?.ipFamilies == expected)
        }
        var t = store()
        let bad = t.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.service("payments/ledger.payments.svc.cluster.local") {
            $0.addresses = [vip([10, 9, 0, 0], 33)]
        }]))
        #expect(!bad.isACK && bad.reply.errorDetail.message.contains("addresses[0] has prefix length 33 (at most 32)"), "\(bad.reply.errorDetail.message)")
    }

    @Test func aServiceMustBeNamedNamespaceSlashHostname() {
        var s = store()
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.service("payments/other-host")]))
        #expect(!a.isACK && s.services.isEmpty)
        #expect(a.reply.errorDetail.message.contains("payments/other-host: a service's resource name must be payments/ledger.payments.svc.cluster.local"),
                "\(a.reply.errorDetail.message)")
    }

    /// The names a response changed are what the proxy's mesh index is brought up to date with: a
    /// name left out would leave its old entry routed to.
    @Test func aResponseNamesWhatItChanged() {
        var s = store()
        let key = "payments/ledger.payments.svc.cluster.local"
        let a = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.workload("a"), Self.workload("b", ip: [10, 1, 0, 21]), Self.service(key)]))
        #expect(a.changedAddresses == ["a", "b", key])
        let b = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("a"), Self.workload("b", ip: [10, 1, 0, 22])], removed: [key]))
        #expect(b.changedAddresses == ["b", key], "a is unchanged")
        let c = s.apply(Self.response(XDSConversion.addressType, nonce: "n3", [], removed: ["a", "never-held"]))
        #expect(c.changedAddresses == ["a"] && c.changed)
        let d = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n4", []))
        #expect(d.changedAddresses.isEmpty)
    }

    @Test func anUnchangedResourceChangesNothing() {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.workload("a")]))
        #expect(!s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("a")])).changed)
    }

    @Test(arguments: [
        ("empty address", { @Sendable (m: inout Istio_Security_Match) in var a = Istio_Security_Address(); a.address = Data(); m.sourceIps = [a] },
         "address has 0 bytes"),
        ("prefix too long", { @Sendable (m: inout Istio_Security_Match) in var a = Istio_Security_Address(); a.address = Data([10, 0, 0, 0]); a.length = 33; m.sourceIps = [a] },
         "10.0.0.0/33 is not an address block"),
        ("port 0", { @Sendable (m: inout Istio_Security_Match) in m.notDestinationPorts = [0] }, "port 0 is out of range"),
        ("port too big", { @Sendable (m: inout Istio_Security_Match) in m.destinationPorts = [70_000] }, "port 70000 is out of range"),
        ("string match without kind", { @Sendable (m: inout Istio_Security_Match) in m.principals = [Istio_Security_StringMatch()] },
         "principals: a string match with no kind"),
    ] as [(String, @Sendable (inout Istio_Security_Match) -> Void, String)])
    func badPolicyMatchesAreRejectedWithWhereAndWhy(_ name: String, configure: @Sendable (inout Istio_Security_Match) -> Void, reason: String) {
        var s = store()
        let r = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n", [Self.denyPort("p", configure: configure)]))
        #expect(!r.isACK)
        #expect(r.reply.errorDetail.message.contains("payments/p: rules[0].clauses[0].matches[0]: \(reason)"), "\(r.reply.errorDetail.message)")
        #expect(s.policies.isEmpty)
    }

    @Test func policyMatchesMapOntoTheEngine() throws {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n", [Self.denyPort("p") { m in
            var sa = Istio_Security_ServiceAccountMatch()
            sa.namespace = "shop"
            sa.serviceAccount = "frontend"
            m.serviceAccounts = [sa]
            var v6 = Istio_Security_Address()
            v6.address = Data([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0])   // ::ffff:10.0.0.0/104 is 10.0.0.0/8
            v6.length = 104
            m.sourceIps = [v6]
            var ns = Istio_Security_StringMatch()
            ns.prefix = "pay"
            m.namespaces = [ns]
        }]))
        let m = try #require(s.policies["payments/p"]?.rules.first?.first?.first)
        #expect(m.principals == [.suffix("/ns/shop/sa/frontend")])
        #expect(m.sourceIps == [CIDR("10.0.0.0/8")!])
        #expect(m.namespaces == [.prefix("pay")])
    }

    @Test func aWorkloadSelectorPolicyAppliesOnlyToTheWorkloadsThatNameIt() throws {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n", [Self.denyPort("deny-9000", scope: .workloadSelector)]))
        let set = PolicySet(Array(s.policies.values))
        let facts = ConnectionFacts(source: nil, sourceIP: IPAddress("10.0.0.10")!, destinationIP: IPAddress("10.1.0.20")!, destinationPort: 9000)
        #expect(set.decide(facts, for: PolicyTarget(namespace: "payments", labels: [:], policies: ["payments/deny-9000"])).verdict == .deny)
        #expect(set.decide(facts, for: PolicyTarget(namespace: "payments", labels: [:], policies: [])).verdict == .allow)
        #expect(set.decide(facts, for: PolicyTarget(namespace: "payments", labels: [:], policies: ["payments/other"])).verdict == .allow)
    }

    /// Found by the xDS fuzz target: a response naming one policy twice with different rules was
    /// applied entry by entry, so the last one won and the same response applied again "changed"
    /// the policy twice. Now neither entry is used and the version held before stays.
    @Test func aNameGivenTwiceInOneResponseIsRejectedAndWhatWasHeldStays() throws {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n1", [Self.denyPort("deny-9000", port: 9000)]))
        let twice = Self.response(XDSConversion.authorizationType, nonce: "n2",
                                  [Self.denyPort("deny-9000", port: 4500), Self.denyPort("other", port: 7000), Self.denyPort("deny-9000", port: 4600)])
        let r = s.apply(twice)
        #expect(!r.isACK && r.reply.responseNonce == "n2")
        #expect(r.reply.errorDetail.message == "payments/deny-9000: named more than once in one response (resources and removed resources together)",
                "\(r.reply.errorDetail.message)")
        #expect(try #require(s.policies["payments/deny-9000"]?.rules.first?.first?.first).destinationPorts == [9000])
        #expect(s.policies["payments/other"] != nil, "the rest of the response is applied")
        #expect(!s.apply(twice).changed, "the same response again changes nothing")
        // Not counted as held: a new stream asks for it again.
        let initial = try #require(s.initialRequests().first { $0.typeURL == XDSConversion.authorizationType })
        #expect(Array(initial.initialResourceVersions.keys) == ["payments/other"])
    }

    @Test func aNameBothAddedAndRemovedIsRejected() {
        var s = store()
        _ = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.workload("a")]))
        let r = s.apply(Self.response(XDSConversion.addressType, nonce: "n2", [Self.workload("a", ip: [10, 1, 0, 99])], removed: ["a"]))
        #expect(!r.isACK && !r.changed)
        #expect(r.reply.errorDetail.message.hasPrefix("a: named more than once"), "\(r.reply.errorDetail.message)")
        #expect(s.workloads["a"]?.workloadIps == [IPAddress("10.1.0.20")!])
    }

    /// istiod names a workload by its uid and a policy by namespace/name; a resource named
    /// otherwise would be stored under one key and looked up (or selected) under another.
    @Test func aResourceMustBeNamedAsIstiodNamesIt() {
        var s = store()
        var policy = Self.denyPort("deny-9000")
        policy.name = "payments/another-name"
        let r = s.apply(Self.response(XDSConversion.addressType, nonce: "n1", [Self.workload("a") { $0.uid = "b" }]))
        let p = s.apply(Self.response(XDSConversion.authorizationType, nonce: "n2", [policy]))
        #expect(r.reply.errorDetail.message == "a: a workload's resource name must be its uid b", "\(r.reply.errorDetail.message)")
        #expect(p.reply.errorDetail.message == "payments/another-name: a policy's resource name must be payments/deny-9000",
                "\(p.reply.errorDetail.message)")
        #expect(s.workloads.isEmpty && s.policies.isEmpty)
        #expect(s.apply(Self.response(XDSConversion.addressType, nonce: "n3", [Self.workload("c") { $0.uid = "" }])).isACK)
        #expect(s.workloads["c"]?.uid == "c")
    }

    @Test func anUnsubscribedTypeIsNACKed() {
        var s = store()
        let r = s.apply(Self.response("type.googleapis.com/envoy.config.cluster.v3.Cluster", nonce: "n", []))
        #expect(!r.isACK && r.reply.errorDetail.message.contains("type not subscribed"))
    }
}
