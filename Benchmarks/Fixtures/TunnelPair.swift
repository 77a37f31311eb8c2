import HBONEH2
import HBONETLS

/// An HBONE client and server wired back to back in memory: TLS engines carrying HTTP/2 sessions,
/// as the proxy runs them, without sockets (or HTTP/2 alone, without a PKI). Bytes move only when
/// `pump` is called.
public final class TunnelPair {
    public let clientTLS: TLSEngine?
    public let serverTLS: TLSEngine?
    public let client: H2Session
    public let server: H2Session
    public let clientEvents = StreamEvents()
    public let serverEvents = StreamEvents()
    /// Plaintext read and records gathered as the proxy's worker does (TLSRecordGather).
    private let scratch = TLSScratch()

    /// Handshakes (with a PKI) and exchanges the HTTP/2 prefaces and SETTINGS.
    public init(pki: InMemoryPKI?) throws {
        guard let pki else {
            clientTLS = nil
            serverTLS = nil
            client = try H2Session(role: .client, delegate: nil)
            server = try H2Session(role: .server, delegate: nil)
            client.delegate = clientEvents
            server.delegate = serverEvents
            try pump()
            return
        }
        let cctx = try TLSContext(role: .client, certifiedKey: pki.client, trust: pki.trust)
        let sctx = try TLSContext(role: .server, certifiedKey: pki.server, trust: pki.serverTrust)
        let clientTLS = try TLSEngine(context: cctx, verification: .outbound(expected: [InMemoryPKI.serverID]))
        let serverTLS = try TLSEngine(context: sctx, verification: .inbound(trustDomains: ["cluster.local"]))
        self.clientTLS = clientTLS
        self.serverTLS = serverTLS
        try TunnelPair.handshake(client: clientTLS, server: serverTLS)
        client = try H2Session(role: .client, delegate: nil)
        server = try H2Session(role: .server, delegate: nil)
        client.delegate = clientEvents
        server.delegate = serverEvents
        try pump()
    }

    /// Runs a full handshake between two engines in memory.
    public static func handshake(client: TLSEngine, server: TLSEngine) throws {
        for _ in 0..<10 {
            let c = client.handshake()
            client.takeCiphertext { server.feed($0) }
            let s = server.handshake()
            server.takeCiphertext { client.feed($0) }
            if c == .complete && s == .complete { return }
            if case let .failed(e) = c { throw e }
            if case let .failed(e) = s { throw e }
        }
        throw TLSError(code: "bench", reason: "in-memory handshake did not finish")
    }

    /// Moves frames both ways (H2 → TLS → TLS → H2) until both sides are quiet.
    public func pump() throws {
        while try move(from: client, via: clientTLS, to: serverTLS, into: server) + move(from: server, via: serverTLS, to: clientTLS, into: client) > 0 {}
    }

    private func move(from: H2Session, via: TLSEngine?, to: TLSEngine?, into: H2Session) throws -> Int {
        guard let via, let to else {
            return try from.produce { bytes in try? into.receive(bytes) }
        }
        var n = 0
        if let failure = try TLSRecordGather.write(to: via, scratch: scratch, { append in n = try from.produce(append) }) { throw failure }
        via.takeCiphertext { to.feed($0) }
        var delivered = 0
        while true {
            let status = to.read(into: scratch.plaintext)
            switch status {
            case let .bytes(count):
                try into.receive(UnsafeRawBufferPointer(rebasing: scratch.plaintext[0..<count]))
                delivered += count
            case .needMore, .closed:
                return n + delivered
            case let .failed(error):
                throw error
            }
        }
    }

    /// One whole tunnel: CONNECT, 200, one byte each way, END_STREAM both ways, stream closed on both sides.
    public func openAndCloseTunnel(authority: String = "10.2.0.9:8080") throws {
        let id = try client.connect(authority: authority, headers: [])
        try pump()
        try server.respond(stream: id, status: 200)
        withUnsafeBytes(of: UInt8(0x2a)) { client.send(stream: id, $0) }
        try pump()
        withUnsafeBytes(of: UInt8(0x2a)) { server.send(stream: id, $0) }
        client.finish(stream: id)
        server.finish(stream: id)
        try pump()
        guard clientEvents.closed == serverEvents.closed, clientEvents.lastClosed == id else {
            throw TLSError(code: "bench", reason: "tunnel \(id) did not close on both sides")
        }
    }

    /// Opens one stream and leaves it open (for DATA round trips).
    public func openStream(authority: String = "10.2.0.9:8080") throws -> Int32 {
        let id = try client.connect(authority: authority, headers: [])
        try pump()
        try server.respond(stream: id, status: 200)
        try pump()
        return id
    }

    /// One DATA frame of `bytes` client → server, and the same size back.
    public func roundTrip(stream: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        client.send(stream: stream, bytes)
        try pump()
        server.send(stream: stream, bytes)
        try pump()
    }
}

/// Counts what a session reports and consumes DATA at once (the bytes "left the proxy").
public final class StreamEvents: H2SessionDelegate {
    public private(set) var received = 0
    public private(set) var closed = 0
    public private(set) var lastClosed: Int32 = 0

    public init() {}
    public func h2(_ s: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) {}
    public func h2(_ s: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) {}
    public func h2(_ s: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        received += bytes.count
        s.consume(stream: stream, bytes.count)
    }
    public func h2(_ s: H2Session, endOfStream stream: Int32) {}
    public func h2(_ s: H2Session, closed stream: Int32, errorCode: UInt32) {
        closed += 1
        lastClosed = stream
    }
    public func h2(_ s: H2Session, drained stream: Int32) {}
    public func h2(_ s: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) {}
    public func h2PingAcknowledged(_ s: H2Session) {}
}
