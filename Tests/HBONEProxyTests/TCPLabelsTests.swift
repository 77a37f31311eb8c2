import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
@testable import HBONEProxy

/// Where each of a connection's Istio labels comes from (hbone-reference §5): the workload this
/// proxy knows, else what the peer said of itself in `baggage`, else "unknown"; for the
/// destination's canonical service and revision, its own answer first.
@Suite struct TCPLabelsTests {
    static let yaml = """
        workloads:
        - {name: client-0, namespace: a, workloadIps: ["10.0.0.1"], protocol: HBONE, node: east, clusterId: east-1}
        - {name: server-0, namespace: b, workloadIps: ["10.1.0.1"], protocol: HBONE, node: west, clusterId: west-1}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
        """

    func info(src: Workload?, srcBaggage: Baggage? = nil, dst: Workload?, dstBaggage: Baggage? = nil) -> ConnectionInfo {
        var info = ConnectionInfo(direction: .outbound, src: SocketAddress("10.0.0.1:40000")!, dst: SocketAddress("10.1.0.1:80")!,
                                  srcWorkload: src, srcIdentity: src?.identity, dstWorkload: dst, dstIdentity: dst?.identity,
                                  startedAt: 0, mutualTLS: true)
        info.srcBaggage = srcBaggage
        info.dstBaggage = dstBaggage
        return info
    }

    @Test func knownWorkloadsNameBothSides() throws {
        let s = try testState(Self.yaml)
        var client = try #require(s.workloadsByIP[IPAddress("10.0.0.1")!])
        client.canonicalName = "checkout"
        client.canonicalRevision = "v1"
        var server = try #require(s.workloadsByIP[IPAddress("10.1.0.1")!])
        server.canonicalName = "ledger"
        server.canonicalRevision = "v7"
        // The source's own workload wins over anything it said of itself.
        let l = TCPLabels(info(src: client, srcBaggage: Baggage(clusterId: "x", namespace: "x", workloadName: "x", serviceName: "x", revision: "x"),
                               dst: server), flags: "-")
        #expect(l.reporter == "source" && l.sourcePrincipal == client.identity.description && l.sourceWorkload == client.workloadName)
        #expect(l.sourceNamespace == "a" && l.sourceCluster == "east-1")
        #expect(l.sourceCanonicalService == "checkout" && l.sourceCanonicalRevision == "v1")
        #expect(l.destinationPrincipal == server.identity.description && l.destinationWorkload == server.workloadName)
        #expect(l.destinationNamespace == "b" && l.destinationCluster == "west-1")
        #expect(l.destinationCanonicalService == "ledger" && l.destinationCanonicalRevision == "v7")
        #expect(l.destinationService == "unknown" && l.destinationServiceName == "unknown" && l.destinationServiceNamespace == "unknown")
        #expect(l.securityPolicy == "mutual_tls" && l.responseFlags == "-")
    }

    @Test func baggageNamesWhatThisProxyDoesNotKnow() throws {
        let s = try testState(Self.yaml)
        var server = try #require(s.workloadsByIP[IPAddress("10.1.0.1")!])
        server.canonicalName = "ledger"
        server.canonicalRevision = "v7"
        // An unknown source: its baggage, partly; what it left out is "unknown".
        let partial = TCPLabels(info(src: nil, srcBaggage: Baggage(namespace: "n", workloadName: "w", serviceName: "svc"), dst: server), flags: "DENY")
        #expect(partial.sourcePrincipal == "unknown" && partial.sourceWorkload == "w" && partial.sourceNamespace == "n")
        #expect(partial.sourceCanonicalService == "svc" && partial.sourceCanonicalRevision == "unknown" && partial.sourceCluster == "unknown")
        // The destination's own answer wins over the workload this proxy has for it, field by
        // field: a revision it left out is the workload's.
        let answered = TCPLabels(info(src: nil, dst: server, dstBaggage: Baggage(clusterId: "far", serviceName: "real-ledger")), flags: "-")
        #expect(answered.destinationCanonicalService == "real-ledger" && answered.destinationCanonicalRevision == "v7")
        #expect(answered.destinationCluster == "far" && answered.destinationWorkload == server.workloadName)
        // Nobody known on either side.
        let none = TCPLabels(info(src: nil, dst: nil), flags: "-")
        #expect([none.sourceWorkload, none.sourceCanonicalService, none.sourceCanonicalRevision, none.destinationWorkload,
                 none.destinationCanonicalService, none.destinationCanonicalRevision, none.destinationCluster].allSatisfy { $0 == "unknown" })
    }

    /// Which connections' labels a peer's baggage names (those the series bound applies to), and
    /// the labels the same connection has without it.
    @Test func baggageNamedLabelsAndTheLabelsWithoutThem() throws {
        let s = try testState(Self.yaml)
        let client = try #require(s.workloadsByIP[IPAddress("10.0.0.1")!])
        let server = try #require(s.workloadsByIP[IPAddress("10.1.0.1")!])
        let claim = Baggage(clusterId: "far", namespace: "a", workloadName: "made-up", serviceName: "made-up", revision: "v9")
        // A known source's baggage names nothing; an unknown one's does; a destination's always does.
        #expect(!TCPLabels.namesBaggage(info(src: client, srcBaggage: claim, dst: server)))
        #expect(TCPLabels.namesBaggage(info(src: nil, srcBaggage: claim, dst: server)))
        #expect(TCPLabels.namesBaggage(info(src: client, dst: server, dstBaggage: claim)))
        #expect(!TCPLabels.namesBaggage(info(src: nil, dst: nil)))
        var unknown = info(src: nil, srcBaggage: claim, dst: server, dstBaggage: claim)
        unknown.srcIdentity = client.identity
        let named = TCPLabels(unknown, flags: "-")
        #expect(named.sourceWorkload == "made-up" && named.destinationCanonicalService == "made-up")
        let plain = TCPLabels(ignoringBaggage: unknown, flags: "-")
        #expect(plain.sourceWorkload == "unknown" && plain.sourceCluster == "unknown" && plain.sourceCanonicalRevision == "unknown")
        // What is verified stays: the source's identity and the namespace it names.
        #expect(plain.sourcePrincipal == client.identity.description && plain.sourceNamespace == "a")
        #expect(plain.destinationWorkload == server.workloadName && plain.destinationCluster == "west-1")
    }

    /// A service's name and namespace only as a pair.
    @Test func aServiceIsNamedByBothItsNameAndNamespace() throws {
        var i = info(src: nil, dst: nil)
        i.dstService = "api.example.com"
        i.dstServiceName = "api"
        #expect(TCPLabels(i, flags: "-").destinationServiceName == "unknown")
        i.dstServiceNamespace = "b"
        let l = TCPLabels(i, flags: "-")
        #expect(l.destinationService == "api.example.com" && l.destinationServiceName == "api" && l.destinationServiceNamespace == "b")
    }

    /// `take()` hands a tunnel every fact (so its labels and log line are the same as before the
    /// move) and leaves only the direction and addresses behind.
    @Test func takingTheInfoMovesEveryFact() throws {
        let s = try testState(Self.yaml)
        let client = try #require(s.workloadsByIP[IPAddress("10.0.0.1")!])
        let server = try #require(s.workloadsByIP[IPAddress("10.1.0.1")!])
        var original = info(src: client, dst: server)
        original.policy = "b/allow-checkout"
        original.hboneTarget = "ledger.b.svc.cluster.local:80"
        original.addSent(7)
        let before = TCPLabels(original, flags: "-")
        let taken = original.take()
        #expect(TCPLabels(taken, flags: "-") == before)
        #expect(taken.policy == "b/allow-checkout" && taken.hboneTarget == "ledger.b.svc.cluster.local:80" && taken.bytesSent == 7)
        #expect(taken.srcIdentity == client.identity && taken.dstIdentity == server.identity && taken.mutualTLS)
        #expect(original.srcWorkload == nil && original.dstWorkload == nil && original.policy == nil && original.bytesSent == 0)
        #expect(original.direction == .outbound && original.src == taken.src && original.dst == taken.dst)
    }
}
