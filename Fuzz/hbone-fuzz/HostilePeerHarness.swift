// The harness drives the client proxy's own Worker, which is internal to HBONEProxy: only debug
// builds (where SwiftPM enables testing, as scripts/fuzz.sh and scripts/test.sh build) have it.
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

/// The client proxy (a real `Worker` on a `MemoryNetwork`, virtual clock) opening a tunnel from
/// checkout-0 to ledger-0:8080 through a peer proxy that completes mTLS with ledger's valid SVID
/// and then says whatever the input says, as HTTP/2 plaintext inside TLS. Whatever it says, the
/// client proxy must not trap, and once the peer hangs up and every timeout has passed it holds
/// no tunnel, no connection and no pooled entry, and its gauges are back at zero.
///
/// The first input byte picks how the peer behaves: bit 0, it also half-closes after its bytes;
/// bit 1, the application half-closes after its greeting; bits 2–3, how the bytes are cut into
/// TLS records (16 KiB, or 1, 7 or 100 bytes for the first KiB). The rest follows the peer's SETTINGS frame.
final class HostilePeerHarness {
    nonisolated(unsafe) static let shared = HostilePeerHarness()
    let pki: InMemoryPKI
    let state: ProxyState

    static let ledger = SocketAddress("10.1.0.20:15008")!
    static let capture = SocketAddress("10.0.0.1:15001")!
    /// An empty SETTINGS frame: the peer's connection preface.
    static let settings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

    init() {
        pki = try! InMemoryPKI()
        // Every line is still formatted (peer-controlled text goes into some), then dropped unless
        // HBONE_FUZZ_LOG is set (to read what the proxy made of a finding).
        if getenv("HBONE_FUZZ_LOG") == nil { Log.shared.setSink { _ in } }
        _ = Log.shared.setLevels("debug")
        let yaml = """
        workloads:
        - {name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["10.0.0.10"], protocol: HBONE, node: east}
        - {name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["10.1.0.20"], protocol: HBONE, node: west}
        hbone:
          node: east
          rootCertificates: /unused
          certificates: {directory: /unused}
          listen: {outboundCapture: \(Self.capture)}
          timeouts: {connect: 2s, handshake: 5s, drain: 5s, keepaliveInterval: 30s, keepaliveTimeout: 10s}
        """
        let config = try! ProxyConfig.parse(yaml: yaml, file: "east.yaml", environment: [:])
        state = try! ProxyState(config: config, trust: pki.trust, certificates: [pki.client.identity: pki.client], version: 1)
    }

    func run(_ bytes: UnsafeRawBufferPointer) {
        guard let mode = bytes.first else { return }
        let script = Self.settings + Array(bytes.dropFirst())
        let loop = try! EventLoop()
        loop.useVirtualClock()
        let network = MemoryNetwork(loop: loop)
        let stats = ProxyStats()
        let worker = Worker(loop: loop, state: state, stats: stats, network: network.host(IPAddress("10.0.0.1")!))
        try! worker.syncListeners()
        var peers: [ScriptedPeer] = []
        let listener = try! network.host(Self.ledger.ip).listen(on: Self.ledger, loop: loop, namespace: nil, mark: nil) { [pki] stream, _ in
            let context = try! TLSContext(role: .server, certifiedKey: pki.server, trust: pki.trust)
            let peer = ScriptedPeer(tls: try! TLSEngine(context: context, verification: .inbound(trustDomains: ["cluster.local"])),
                                    script: script, record: ScriptedPeer.recordSize(mode: mode), when: .afterFirstPlaintext, halfClose: mode & 1 != 0)
            peer.stream = stream
            stream.delegate = peer
            peers.append(peer)
        }
        let app = ApplicationEnd(echo: false)
        app.stream = network.connect(from: SocketAddress("10.0.0.10:40000")!, to: SocketAddress("10.1.0.20:8080")!,
                                     redirectedTo: Self.capture, delegate: app)
        app.stream.write(Array("hello".utf8))
        if mode & 2 != 0 { app.stream.shutdownWrite() }
        precondition(loop.runUntilIdle(), "the loop never went idle")
        loop.advanceClock(by: 3_000_000_000)
        // The peer hangs up and the application goes; every timeout passes.
        for p in peers { p.stream.abort() }
        app.stream.abort()
        for _ in 0..<4 { loop.advanceClock(by: 30_000_000_000) }
        precondition(worker.tunnels.isEmpty, "a tunnel outlived its application and its peer: \(worker.tunnels.count)")
        precondition(worker.connections.isEmpty, "an HBONE connection outlived its peer: \(worker.connections.count)")
        precondition(stats.openTunnels.load(ordering: .relaxed) == 0, "hbone_tunnels_open did not return to 0")
        precondition(stats.hboneConnectionsOutbound.load(ordering: .relaxed) == 0, "outbound HBONE connection gauge did not return to 0")
        precondition(stats.pooledConnections.load(ordering: .relaxed) == 0, "pooled connection gauge did not return to 0")
        worker.closeAll()
        listener.close()
        _ = loop.runUntilIdle()
    }
}
#endif
