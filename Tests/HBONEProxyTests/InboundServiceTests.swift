import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
@testable import HBONEProxy

/// `destination_service` on the destination's side: the service the client named when the workload
/// is in it, else the workload's service whose target port was dialled.
@Suite struct InboundServiceTests {
    static let yaml = """
    workloads:
    - name: ledger-0
      namespace: payments
      serviceAccount: ledger
      workloadIps: ["10.1.0.20"]
      protocol: HBONE
      node: west
      services:
        "payments/ledger.payments.svc.cluster.local": {80: 8080}
        "payments/ledger-admin.payments.svc.cluster.local": {9000: 9090}
        "payments/ledger2.payments.svc.cluster.local": {81: 8080}
        "payments/named.payments.svc.cluster.local": {7000: 7070}
    services:
    - {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["10.96.0.20"], ports: {"80": 8080}}
    - {name: ledger-admin, namespace: payments, hostname: ledger-admin.payments.svc.cluster.local, vips: ["10.96.0.21"], ports: {"9000": 0}}
    - {name: ledger2, namespace: payments, hostname: ledger2.payments.svc.cluster.local, vips: ["10.96.0.22"], ports: {"81": 8080}}
    - {name: named, namespace: payments, hostname: named.payments.svc.cluster.local, vips: ["10.96.0.23"], ports: {"7000": 0}}
    - {name: other, namespace: payments, hostname: other.payments.svc.cluster.local, vips: ["10.96.0.30"], ports: {"8080": 8080}}
    hbone:
      node: west
      rootCertificates: /unused
      certificates: {directory: /unused}
    """

    @Test(arguments: [
        // Named by the client and the workload is in it.
        (8080, "ledger2.payments.svc.cluster.local", "ledger2.payments.svc.cluster.local"),
        // Named, but the workload is not in it: the claim is ignored and the port decides.
        (8080, "other.payments.svc.cluster.local", "ledger.payments.svc.cluster.local"),
        // Two services target 8080: the first by key, whatever the dictionary order.
        (8080, nil, "ledger.payments.svc.cluster.local"),
        // Service port 0 is "the same port"; the endpoint's own mapping is a named port.
        (9000, nil, "ledger-admin.payments.svc.cluster.local"),
        (7070, nil, "named.payments.svc.cluster.local"),
        (9090, nil, "ledger-admin.payments.svc.cluster.local"),
        (5432, nil, nil),
    ] as [(Int, String?, String?)])
    func inboundServiceIsGuessedAsZtunnelDoes(port: Int, claimed: String?, expected: String?) throws {
        let s = try testState(Self.yaml)
        let w = try #require(s.workloadsByIP[IPAddress("10.1.0.20")!])
        #expect(s.inboundService(of: w, port: UInt16(port), claimedHost: claimed.map { Substring($0) })?.hostname == expected)
    }
}
