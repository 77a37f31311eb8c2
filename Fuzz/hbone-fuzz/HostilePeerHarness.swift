#if DEBUG
import HBONECore
import HBONEEventLoop
import HBONETLS

/// The client proxy (east's worker, `FuzzNode`) opening three tunnels from checkout-0 to
/// ledger-0:8080 (streams 1, 3 and 5 of one pooled connection) through a peer proxy that completes mTLS with ledger's valid SVID and then says
/// whatever the input says, as HTTP/2 plaintext inside TLS. Whatever it says, the client proxy
/// must not trap, and once the peer hangs up and every timeout has passed it holds no tunnel, no
/// connection and no pooled entry, and its gauges are back at zero.
///
/// The first input byte picks how the peer behaves: bit 0, it also half-closes after its bytes;
/// bit 1, the applications half-close after their greeting; bits 2–3, how the bytes are cut into
/// TLS records (ScriptedPeer.recordSize); bit 4, the applications dial `remote`, so the peer is
/// the east-west gateway of double HBONE: its streams are gateway legs, and the bytes it sends on
/// them reach each tunnel's own inner TLS client. The rest follows the peer's SETTINGS frame.
enum HostilePeerHarness {
    /// An empty SETTINGS frame: the peer's connection preface.
    static let settings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let mode = bytes.first else { return }
        let script = settings + Array(bytes.dropFirst())
        let node = FuzzNode(FuzzNode.east, host: "10.0.0.1")
        var peers: [ScriptedPeer] = []
        let ledger = SocketAddress("10.1.0.20:15008")!
        let listener = try! node.network.host(ledger.ip).listen(on: ledger, loop: node.loop) { stream, _ in
            let context = try! TLSContext(role: .server, certifiedKey: FuzzNode.pki.server, trust: FuzzNode.pki.trust)
            let peer = ScriptedPeer(tls: try! TLSEngine(context: context, verification: .inbound(trustDomains: ["cluster.local"])),
                                    script: script, record: ScriptedPeer.recordSize(mode: mode), when: .afterFirstPlaintext, halfClose: mode & 1 != 0)
            peer.stream = stream
            stream.delegate = peer
            peers.append(peer)
        }
        // Three applications, so the pooled connection carries streams 1, 3 and 5.
        let apps = (0..<3).map { i in
            let app = ApplicationEnd(echo: false)
            app.stream = node.network.connect(from: SocketAddress(ip: IPAddress("10.0.0.10")!, port: 40000 + UInt16(i)),
                                              to: SocketAddress(mode & 16 != 0 ? "10.96.0.30:80" : "10.1.0.20:8080")!,
                                              redirectedTo: SocketAddress("10.0.0.1:15001")!, delegate: app)
            app.stream.write(Array("hello".utf8))
            if mode & 2 != 0 { app.stream.shutdownWrite() }
            return app
        }
        node.run()
        for p in peers { p.stream.abort() }
        for app in apps { app.stream.abort() }
        node.requireNothingLeft()
        listener.close()
        node.close()
    }
}
#endif
