// The node proxy's Worker is internal to HBONEProxy: only debug builds (where SwiftPM enables
// testing, as scripts/fuzz.sh and scripts/test.sh build) have the hostile-peer targets.
#if DEBUG
#if canImport(Glibc)
import Glibc
#endif
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONETLS
import HBONEBenchFixtures
@testable import HBONEProxy

/// One node proxy's worker on a fresh `MemoryNetwork` and virtual clock, for the targets that
/// put a hostile peer in front of it: east (checkout-0, 10.0.0.10, capture on 10.0.0.1:15001) or
/// west (ledger-0, 10.1.0.20, HBONE on :15008, a DENY policy on port 9000). East reaches `remote`
/// (10.96.0.30) only through network net-b's gateway, which is also at 10.1.0.20:15008.
final class FuzzNode {
    static let pki: InMemoryPKI = {
        // Every line is still formatted (peer-controlled text goes into some), then dropped unless
        // HBONE_FUZZ_LOG is set (to read what the proxy made of a finding).
        if getenv("HBONE_FUZZ_LOG") == nil { Log.shared.setSink { _ in } }
        _ = Log.shared.setLevels("debug")
        return try! InMemoryPKI()
    }()
    static let east = state(node: "east", key: pki.client)
    static let west = state(node: "west", key: pki.server)

    static func state(node: String, key: CertifiedKey) -> ProxyState {
        let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east}
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, node: west,
           services: {"payments/ledger.payments.svc.cluster.local": {80: 8080, 90: 9000}}}
        - {uid: net-b/remote-behind-gateway, name: remote-behind-gateway, namespace: payments, network: net-b, protocol: HBONE,
           networkGateway: {destination: "net-b/10.1.0.20"}, services: {"payments/remote.payments.svc.cluster.local": {80: 8080}}}
        - {uid: net-b/eastwest, name: eastwest, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, network: net-b}
        services:
        - {name: ledger, namespace: payments, vips: ["10.96.0.20"], ports: {"80": 8080, "90": 9000, "91": 0}}
        - {name: remote, namespace: payments, vips: ["10.96.0.30"], ports: {"80": 8080}, subjectAltNames: ["spiffe://cluster.local/ns/payments/sa/ledger"]}
        policies:
        - name: deny-9000
          namespace: payments
          action: Deny
          rules:
          - - - destinationPorts: [9000]
        hbone:
          node: \(node)
          rootCertificates: /unused
          certificates: {directory: /unused}
          listen: {outboundCapture: \(node == "east" ? "10.0.0.1" : "10.1.0.1"):15001}
          timeouts: {connect: 2s, handshake: 5s, drain: 5s, keepaliveInterval: 30s, keepaliveTimeout: 10s}
        """
        let config = try! ProxyConfig.parse(yaml: yaml, file: "\(node).yaml", environment: [:])
        return try! ProxyState(config: config, trust: pki.trust, certificates: [key.identity: key], version: 1)
    }

    let loop: EventLoop
    let network: MemoryNetwork
    let stats = ProxyStats()
    let worker: Worker

    /// `host`: the node's own address (its outbound connections come from it).
    init(_ state: ProxyState, host: String) {
        loop = try! EventLoop()
        loop.useVirtualClock()
        network = MemoryNetwork(loop: loop)
        worker = Worker(loop: loop, state: state, stats: stats, network: network.host(IPAddress(host)!))
        try! worker.syncListeners()
    }

    /// Runs what the input set going, and three seconds past the connect timeout.
    func run() {
        precondition(loop.runUntilIdle(), "the loop never went idle")
        loop.advanceClock(by: 3_000_000_000)
    }

    /// After the peer and the applications went: every timeout passes, then nothing may be left.
    func requireNothingLeft() {
        for _ in 0..<4 { loop.advanceClock(by: 30_000_000_000) }
        precondition(worker.tunnels.isEmpty, "a tunnel outlived both its ends: \(worker.tunnels.values.map { "\($0.lifecycle) down=\($0.downstream) up=\($0.upstream)" })")
        precondition(worker.connections.isEmpty, "an HBONE connection outlived its peer: \(worker.connections.count)")
        precondition(stats.openTunnels.load(ordering: .relaxed) == 0, "hbone_tunnels_open did not return to 0")
        precondition(stats.openInbound.load(ordering: .relaxed) == 0, "the inbound tunnel gauge did not return to 0")
        precondition(stats.hboneConnectionsInbound.load(ordering: .relaxed) == 0, "inbound HBONE connection gauge did not return to 0")
        precondition(stats.hboneConnectionsOutbound.load(ordering: .relaxed) == 0, "outbound HBONE connection gauge did not return to 0")
        precondition(stats.pooledConnections.load(ordering: .relaxed) == 0, "pooled connection gauge did not return to 0")
    }

    func close() {
        worker.closeAll()
        _ = loop.runUntilIdle()
    }
}
#endif
