import HBONETestSupport
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEIdentity
import HBONETLS
@testable import HBONEProxy

/// Two node proxies ("east" and "west") and their workloads on one `MemoryNetwork`, driven by a
/// virtual clock: the whole east→west path without sockets, threads or sleeps.
///
/// east: checkout-0 (10.0.0.10), the capture listener at 10.0.0.1:15001.
/// west: ledger-0 (10.1.0.20), HBONE on 10.1.0.20:15008, its application servers on 10.1.0.20:<port>.
final class InMemoryMesh {
    let loop: EventLoop
    let network: MemoryNetwork
    let east: Worker
    let west: Worker
    /// Finished connections as each side recorded them (access log, metrics).
    var eastRecords: [(info: ConnectionInfo, error: ProxyError?)] = []
    var westRecords: [(info: ConnectionInfo, error: ProxyError?)] = []
    private var listeners: [any StreamListener] = []
    /// The applications' ends: each stream and its delegate hold each other until the stream closes,
    /// so the mesh closes whatever a test left open.
    private var clients: [TestClient] = []
    private var servers: [TestServer] = []

    static let capture = SocketAddress("10.0.0.1:15001")!
    static let checkoutIP = IPAddress("10.0.0.10")!
    static let ledgerIP = IPAddress("10.1.0.20")!

    static let timeouts = "connect: 2s, handshake: 5s, drain: 5s, keepaliveInterval: 30s, keepaliveTimeout: 10s"

    static func yaml(node: String, timeouts: String = timeouts) -> String {
        """
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
          node: \(node)
          rootCertificates: /unused
          certificates: {directory: /unused}
          listen: {outboundCapture: \(node == "east" ? capture : SocketAddress("10.1.0.1:15001")!)}
          timeouts: {\(timeouts)}
        """
    }

    /// `eastCertificate`: the directory of checkout's SVID (another root for the trust tests);
    /// `bundle`: the roots both sides trust.
    /// `eastChange`, `westChange`: what each side's config has beyond the common one.
    init(eastCertificate: String = "certs-east/payments/checkout", bundle: String = "bundle-root.pem", timeouts: String = timeouts,
         eastRevocationLists: [RevocationList]? = nil, westRevocationLists: [RevocationList]? = nil,
         eastChange: (inout ProxyConfig) -> Void = { _ in }, westChange: (inout ProxyConfig) -> Void = { _ in }) throws {
        loop = try EventLoop()
        loop.useVirtualClock()
        network = MemoryNetwork(loop: loop)
        east = Worker(loop: loop, state: try Self.state(node: "east", certificate: eastCertificate, bundle: bundle, timeouts: timeouts,
                                                         revocationLists: eastRevocationLists, change: eastChange),
                      stats: ProxyStats(), network: network.host(IPAddress("10.0.0.1")!))
        west = Worker(loop: loop, state: try Self.state(node: "west", certificate: "certs-west/payments/ledger", bundle: bundle, timeouts: timeouts,
                                                         revocationLists: westRevocationLists, change: westChange),
                      stats: ProxyStats(), network: network.host(IPAddress("10.1.0.1")!))
        east.recordObserver = { [unowned self] in eastRecords.append(($0, $1)) }
        west.recordObserver = { [unowned self] in westRecords.append(($0, $1)) }
        try east.syncListeners()
        try west.syncListeners()
    }

    /// `change`: what a later snapshot alters (as a reload or istiod would), applied to the parsed config.
    static func state(node: String, certificate: String, bundle: String, timeouts: String = timeouts,
                      version: Int = 1, revocationLists: [RevocationList]? = nil, previous: ProxyState? = nil,
                      change: (inout ProxyConfig) -> Void = { _ in }) throws -> ProxyState {
        var config = try ProxyConfig.parse(yaml: yaml(node: node, timeouts: timeouts), file: "\(node).yaml", environment: [:])
        change(&config)
        let key = try CertifiedKey(directory: TestPKI.path(certificate))
        return try ProxyState(config: config, trust: TrustBundle(pem: TestPKI.bytes(bundle), revocationLists: revocationLists),
                              certificates: [key.identity: key], version: version, previous: previous)
    }

    /// West's snapshot with `change` applied to its config (ledger-0 is `workloads[1]`).
    /// `previous`: the snapshot it follows, as a reload passes it (what did not change is kept).
    func westState(version: Int = 2, previous: ProxyState? = nil, _ change: (inout ProxyConfig) -> Void) throws -> ProxyState {
        try Self.state(node: "west", certificate: "certs-west/payments/ledger", bundle: "bundle-root.pem", version: version,
                       previous: previous, change: change)
    }

    deinit {
        east.recordObserver = nil   // self is going: the observers must not reach it
        west.recordObserver = nil
        east.closeAll()
        west.closeAll()
        for c in clients { c.stream.abort() }
        for s in servers { for c in s.connections { c.stream.abort() } }
        for l in listeners { l.close() }
        loop.runUntilIdle()
    }

    /// An application server on ledger's address.
    @discardableResult
    func serve(port: UInt16, _ behaviour: TestServer.Behaviour = .echo) throws -> TestServer {
        let server = TestServer(behaviour)
        servers.append(server)
        listeners.append(try network.host(Self.ledgerIP).listen(on: SocketAddress(ip: Self.ledgerIP, port: port), loop: loop) { [unowned server] stream, _ in
            server.accept(stream)
        })
        return server
    }

    /// checkout-0 connects to `destination`; iptables-style capture hands it to east's 15001.
    func connect(to destination: String, from port: UInt16 = 0) -> TestClient {
        let client = TestClient()
        let source = SocketAddress(ip: Self.checkoutIP, port: port == 0 ? network.ephemeralPort() : port)
        client.stream = network.connect(from: source, to: SocketAddress(destination)!, redirectedTo: Self.capture, delegate: client)
        clients.append(client)
        return client
    }

    /// checkout-0 → ledger-0:8080 through both proxies with `greeting` echoed back: an established
    /// tunnel (the test serves 8080 first).
    func establishedTunnel(_ greeting: String) throws -> TestClient {
        let app = connect(to: "10.1.0.20:8080")
        app.send(greeting)
        run()
        guard app.text == greeting else { throw MeshError("the tunnel did not echo \(greeting): got \(app.text)") }
        return app
    }

    struct MeshError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    func run() { precondition(loop.runUntilIdle(), "the loop never went idle") }
    func advance(seconds: Double) { loop.advanceClock(by: UInt64(seconds * 1e9)) }
}

/// An application's end of a connection: what it received, whether it saw EOF or an error.
final class TestClient: TCPStreamDelegate {
    var stream: TCPStream!
    var received: [UInt8] = []
    var connected = false
    var eof = false
    var failure: Int32?

    func send(_ bytes: [UInt8]) { stream.write(bytes) }
    func send(_ text: String) { send(Array(text.utf8)) }
    func shutdownWrite() { stream.shutdownWrite() }
    var text: String { String(decoding: received, as: UTF8.self) }

    func tcpStreamConnected(_ stream: TCPStream) { connected = true }
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) { received.append(contentsOf: bytes) }
    func tcpStreamReadClosed(_ stream: TCPStream) { eof = true }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { failure = errno }
}

/// The workload behind the west proxy.
final class TestServer {
    enum Behaviour {
        /// Echoes; half-closes after the client does.
        case echo
        /// Sends `greeting` and half-closes at once, then keeps reading.
        case greetAndShut(String)
    }

    final class Connection: TCPStreamDelegate {
        let behaviour: Behaviour
        let stream: TCPStream
        var received: [UInt8] = []
        var eof = false
        var failure: Int32?

        init(_ stream: TCPStream, behaviour: Behaviour) {
            self.stream = stream
            self.behaviour = behaviour
        }

        func tcpStreamConnected(_ stream: TCPStream) {}
        func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
            received.append(contentsOf: bytes)
            if case .echo = behaviour { stream.write(bytes) }
        }
        func tcpStreamReadClosed(_ stream: TCPStream) {
            eof = true
            if case .echo = behaviour { stream.shutdownWrite() }
        }
        func tcpStream(_ stream: TCPStream, wrote count: Int) {}
        func tcpStream(_ stream: TCPStream, failed errno: Int32) { failure = errno }
    }

    let behaviour: Behaviour
    var connections: [Connection] = []

    init(_ behaviour: Behaviour) { self.behaviour = behaviour }

    func accept(_ stream: TCPStream) {
        let c = Connection(stream, behaviour: behaviour)
        stream.delegate = c
        connections.append(c)
        if case let .greetAndShut(greeting) = behaviour {
            stream.write(Array(greeting.utf8))
            stream.shutdownWrite()
        }
    }
}
