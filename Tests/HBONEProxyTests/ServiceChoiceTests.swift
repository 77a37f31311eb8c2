import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
@testable import HBONEProxy

/// Which service a VIP or hostname names depends on the client, as in ztunnel: services another
/// namespace may not see are skipped, and of several sharing a VIP or hostname (ServiceEntries in
/// several namespaces) the client's own namespace wins, then the canonical one, then the first.
@Suite struct ServiceChoiceTests {
    /// `api.example.com` (VIP 240.240.0.1) is defined in namespaces a, b (canonical) and c;
    /// `private` is visible to namespace a only. Clients run in a, b and d.
    static func yaml(canonical: Bool = true) -> String {
        """
        workloads:
        - {name: client-a, namespace: a, workloadIps: ["10.0.0.1"], protocol: HBONE, node: east}
        - {name: client-b, namespace: b, workloadIps: ["10.0.0.2"], protocol: HBONE, node: east}
        - {name: client-d, namespace: d, workloadIps: ["10.0.0.4"], protocol: HBONE, node: east}
        - {name: api-a, namespace: a, workloadIps: ["10.1.0.1"], protocol: HBONE, node: west, services: {"a/api.example.com": {443: 8443}}}
        - {name: api-b, namespace: b, workloadIps: ["10.1.0.2"], protocol: HBONE, node: west, services: {"b/api.example.com": {443: 8443}}}
        - {name: api-c, namespace: c, workloadIps: ["10.1.0.3"], protocol: HBONE, node: west, services: {"c/api.example.com": {443: 8443}}}
        - {name: private-0, namespace: a, workloadIps: ["10.1.0.9"], protocol: HBONE, node: west, services: {"a/private.a.svc.cluster.local": {80: 8080}}}
        services:
        - {name: api, namespace: a, hostname: api.example.com, vips: ["240.240.0.1"], ports: {"443": 8443}}
        - {name: api, namespace: b, hostname: api.example.com, vips: ["240.240.0.1"], ports: {"443": 8443}, canonical: \(canonical)}
        - {name: api, namespace: c, hostname: api.example.com, vips: ["240.240.0.1"], ports: {"443": 8443}}
        - {name: private, namespace: a, hostname: private.a.svc.cluster.local, vips: ["10.96.0.9"], ports: {"80": 8080}, visibility: Namespace}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """
    }

    static let api = SocketAddress("240.240.0.1:443")!

    @Test func aSharedVIPNamesTheClientsOwnNamespacesServiceThenTheCanonicalOne() throws {
        let s = try testState(Self.yaml())
        #expect(s.resolve(Self.api, from: IPAddress("10.0.0.1"))?.workload?.name == "api-a")
        #expect(s.resolve(Self.api, from: IPAddress("10.0.0.2"))?.workload?.name == "api-b")
        #expect(s.resolve(Self.api, from: IPAddress("10.0.0.4"))?.workload?.name == "api-b")
        #expect(s.resolve(Self.api)?.workload?.name == "api-b")
        #expect(s.resolve(hostname: "api.example.com", port: 443, from: IPAddress("10.0.0.1"))?.service?.namespace == "a")
        #expect(s.resolve(hostname: "api.example.com", port: 443, from: IPAddress("10.0.0.4"))?.service?.namespace == "b")
        // None canonical: the first one listed.
        let first = try testState(Self.yaml(canonical: false))
        #expect(first.resolve(Self.api, from: IPAddress("10.0.0.4"))?.workload?.name == "api-a")
        #expect(first.resolve(Self.api, from: IPAddress("10.0.0.2"))?.workload?.name == "api-b")
    }

    /// The metrics name the service the connection went to: with one hostname in several
    /// namespaces, `destination_service_namespace` is the client's choice, not the hostname's
    /// default (it used to be looked up again by hostname, giving the canonical one to everyone).
    @Test func metricLabelsNameTheServiceTheConnectionWentTo() throws {
        let s = try testState(Self.yaml())
        for (client, namespace) in [("10.0.0.1", "a"), ("10.0.0.4", "b")] {
            let d = try #require(s.resolve(Self.api, from: IPAddress(client)))
            var info = ConnectionInfo(direction: .outbound, src: SocketAddress(ip: IPAddress(client)!, port: 40000), dst: Self.api,
                                      startedAt: 0, mutualTLS: true)
            info.setService(d.service)
            let labels = TCPLabels(info, flags: "-")
            #expect(labels.destinationService == "api.example.com" && labels.destinationServiceName == "api")
            #expect(labels.destinationServiceNamespace == namespace, "client \(client)")
        }
    }

    /// A service visible to its namespace only: clients elsewhere do not resolve it (its VIP is
    /// an address the mesh does not know, passed through as for ztunnel; its hostname is unknown).
    @Test func aNamespaceScopedServiceIsSeenByItsOwnNamespaceOnly() throws {
        let s = try testState(Self.yaml())
        let vip = SocketAddress("10.96.0.9:80")!
        #expect(s.resolve(vip, from: IPAddress("10.0.0.1"))?.workload?.name == "private-0")
        let outside = try #require(s.resolve(vip, from: IPAddress("10.0.0.2")))
        #expect(outside.route == .direct(vip) && outside.service == nil && outside.workload == nil)
        #expect(s.resolve(hostname: "private.a.svc.cluster.local", port: 80, from: IPAddress("10.0.0.2")) == nil)
        #expect(s.resolve(hostname: "private.a.svc.cluster.local", port: 80, from: IPAddress("10.0.0.1"))?.workload?.name == "private-0")
        // A client that is no workload (SOCKS5 from the node) is not filtered, as in ztunnel.
        #expect(s.resolve(vip)?.workload?.name == "private-0")
    }
}
