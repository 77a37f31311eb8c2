// Drives the server proxy's own Worker, internal to HBONEProxy: debug builds only (see
// HostilePeerHarness).
#if DEBUG
#if canImport(Glibc)
import Glibc
#endif
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEIdentity
import HBONETLS
import HBONEBenchFixtures
@testable import HBONEProxy

/// The server proxy (a real `Worker` on a `MemoryNetwork`, virtual clock) serving ledger-0, with
/// an echo server on 10.1.0.20:8080 and another on :9000, which a DENY policy closes. A client
/// that holds checkout's valid SVID completes mTLS on :15008, sends the HTTP/2 preface and an empty
/// SETTINGS frame, then the input. Whatever it sends, the proxy must not trap, nothing may ever
/// reach :9000, and once the client hangs up and every timeout has passed no tunnel, connection or
/// gauge is left.
///
/// The first input byte: bit 0, the client half-closes after its bytes; bits 2–3, the record size
/// of the first KiB (16 KiB, 1, 7 or 100 bytes).
final class HostileClientHarness {
    nonisolated(unsafe) static let shared = HostileClientHarness()
    let pki: InMemoryPKI
    let state: ProxyState

    static let inbound = SocketAddress("10.1.0.20:15008")!
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

    init() {
        pki = try! InMemoryPKI()
        if getenv("HBONE_FUZZ_LOG") == nil { Log.shared.setSink { _ in } }
        _ = Log.shared.setLevels("debug")
        let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east}
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, node: west}
        policies:
        - name: deny-9000
          namespace: payments
          action: Deny
          rules:
          - - - destinationPorts: [9000]
        hbone:
          node: west
          rootCertificates: /unused
          certificates: {directory: /unused}
          listen: {outboundCapture: 10.1.0.1:15001}
          timeouts: {connect: 2s, handshake: 5s, drain: 5s, keepaliveInterval: 30s, keepaliveTimeout: 10s}
        """
        let config = try! ProxyConfig.parse(yaml: yaml, file: "west.yaml", environment: [:])
        state = try! ProxyState(config: config, trust: pki.trust, certificates: [pki.server.identity: pki.server], version: 1)
    }

    func run(_ bytes: UnsafeRawBufferPointer) {
        guard let mode = bytes.first else { return }
        let loop = try! EventLoop()
        loop.useVirtualClock()
        let network = MemoryNetwork(loop: loop)
        let stats = ProxyStats()
        let worker = Worker(loop: loop, state: state, stats: stats, network: network.host(IPAddress("10.1.0.1")!))
        try! worker.syncListeners()
        var served: [ApplicationEnd] = []
        var deniedReached = 0
        let server = network.host(IPAddress("10.1.0.20")!)
        let echo = try! server.listen(on: SocketAddress("10.1.0.20:8080")!, loop: loop) { stream, _ in
            let end = ApplicationEnd(echo: true)
            end.stream = stream
            stream.delegate = end
            served.append(end)
        }
        let denied = try! server.listen(on: SocketAddress("10.1.0.20:9000")!, loop: loop) { stream, _ in
            deniedReached += 1
            stream.abort()
        }
        let context = try! TLSContext(role: .client, certifiedKey: pki.client, trust: pki.trust)
        let client = ScriptedPeer(tls: try! TLSEngine(context: context, verification: .outbound(expected: [InMemoryPKI.serverID])),
                                  script: Self.preface + Array(bytes.dropFirst()), record: ScriptedPeer.recordSize(mode: mode),
                                  when: .afterHandshake, halfClose: mode & 1 != 0)
        client.stream = network.connect(from: SocketAddress("10.0.0.10:40000")!, to: Self.inbound, delegate: client)
        precondition(loop.runUntilIdle(), "the loop never went idle")
        loop.advanceClock(by: 3_000_000_000)
        client.stream.abort()
        for _ in 0..<4 { loop.advanceClock(by: 30_000_000_000) }
        precondition(deniedReached == 0, "a connection reached the port a DENY policy closes")
        precondition(worker.tunnels.isEmpty, "a tunnel outlived its client: \(worker.tunnels.count)")
        precondition(worker.connections.isEmpty, "an HBONE connection outlived its client: \(worker.connections.count)")
        precondition(stats.openTunnels.load(ordering: .relaxed) == 0, "hbone_tunnels_open did not return to 0")
        precondition(stats.openInbound.load(ordering: .relaxed) == 0, "the inbound tunnel gauge did not return to 0")
        precondition(stats.hboneConnectionsInbound.load(ordering: .relaxed) == 0, "inbound HBONE connection gauge did not return to 0")
        worker.closeAll()
        for s in served { s.stream.abort() }
        echo.close()
        denied.close()
        _ = loop.runUntilIdle()
    }
}
#endif
