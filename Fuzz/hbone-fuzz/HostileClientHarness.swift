#if DEBUG
import HBONECore
import HBONEEventLoop
import HBONETLS
import HBONEBenchFixtures

/// The server proxy (west's worker, `FuzzNode`) serving ledger-0, with an echo server on
/// 10.1.0.20:8080 and another on :9000, which a DENY policy closes (also when a CONNECT names
/// ledger's service port 90, which maps to it). A client that holds
/// checkout's valid SVID completes mTLS on :15008, sends the HTTP/2 preface and an empty SETTINGS
/// frame, then the input. Whatever it sends, the proxy must not trap, nothing may ever reach :9000,
/// and once the client hangs up and every timeout has passed no tunnel, connection or gauge is left.
///
/// The first input byte: bit 0, the client half-closes after its bytes; bits 2–3, the record size
/// (ScriptedPeer.recordSize).
enum HostileClientHarness {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let mode = bytes.first else { return }
        let node = FuzzNode(FuzzNode.west, host: "10.1.0.1")
        var served: [ApplicationEnd] = []
        var deniedReached = 0
        let server = node.network.host(IPAddress("10.1.0.20")!)
        let echo = try! server.listen(on: SocketAddress("10.1.0.20:8080")!, loop: node.loop) { stream, _ in
            let end = ApplicationEnd(echo: true)
            end.stream = stream
            stream.delegate = end
            served.append(end)
        }
        let denied = try! server.listen(on: SocketAddress("10.1.0.20:9000")!, loop: node.loop) { stream, _ in
            deniedReached += 1
            stream.abort()
        }
        let context = try! TLSContext(role: .client, certifiedKey: FuzzNode.pki.client, trust: FuzzNode.pki.trust)
        let client = ScriptedPeer(tls: try! TLSEngine(context: context, verification: .outbound(expected: [InMemoryPKI.serverID])),
                                  script: preface + Array(bytes.dropFirst()), record: ScriptedPeer.recordSize(mode: mode),
                                  when: .afterHandshake, halfClose: mode & 1 != 0)
        client.stream = node.network.connect(from: SocketAddress("10.0.0.10:40000")!, to: SocketAddress("10.1.0.20:15008")!, delegate: client)
        node.run()
        client.stream.abort()
        node.requireNothingLeft()
        precondition(deniedReached == 0, "a connection reached the port a DENY policy closes")
        for s in served { s.stream.abort() }
        echo.close()
        denied.close()
        node.close()
    }
}
#endif
