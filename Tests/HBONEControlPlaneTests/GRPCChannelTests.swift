import Foundation
import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEGRPC
import HBONEH2
import HBONEIdentity
@testable import HBONETLS
@testable import HBONEControlPlane

/// The gRPC channel on a virtual clock and an in-memory network: its deadlines and keepalive are
/// checked to the second, and nothing reaches a server that failed a check.
@Suite struct GRPCChannelTests {
    static let istiodAddress = SocketAddress("10.9.0.1:15012")!

    final class Harness {
        let loop: EventLoop
        let network: MemoryNetwork
        /// The server of the latest accepted connection.
        var server: MemoryGRPCServer? { servers.last }
        var listener: (any StreamListener)?
        /// Applied to each accepted server before it reads anything.
        var configure: (MemoryGRPCServer) -> Void = { _ in }
        private var channels: [GRPCChannel] = []
        private var servers: [MemoryGRPCServer] = []

        /// Closes every channel and server stream: each holds its peer (and the memory network
        /// its endpoints) until closed, so a test that left one open would leak it. A server's
        /// HTTP/2 session holds the server (its delegate) until the server lets go of it.
        deinit {
            for c in channels { c.close("test over") }
            for s in servers {
                s.stream.abort()
                s.h2 = nil
            }
            listener?.close()
            _ = loop.runUntilIdle()
        }

        init() throws {
            loop = try EventLoop()
            loop.useVirtualClock()
            network = MemoryNetwork(loop: loop)
        }

        /// A server at `istiodAddress`: `handshake: false` accepts and says nothing.
        func serve(handshake: Bool = true, selectH2: Bool = true) throws {
            let (chain, key) = try CertifiedKey.readFiles(directory: TestPKI.path("istiod"))
            let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/istio-system/sa/istiod")
            let context = try ControlPlaneTLSContext(serving: CertifiedKey(unchecked: chain, key: key, identity: identity),
                                                     trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")), selectH2: selectH2)
            listener = try network.host(GRPCChannelTests.istiodAddress.ip).listen(on: GRPCChannelTests.istiodAddress, loop: loop) { [unowned self] stream, _ in
                let s = MemoryGRPCServer(stream: stream, tls: try! TLSEngine(controlPlane: context, serverName: ""), silent: !handshake)
                configure(s)
                stream.delegate = s
                servers.append(s)
            }
        }

        func channel(name: String = "istiod.istio-system.svc", bundle: String = "bundle-root.pem") throws -> GRPCChannel {
            let tls = try ControlPlaneTLSContext(trust: TrustBundle(pem: TestPKI.bytes(bundle)))
            let channel = GRPCChannel(loop: loop, target: .init(endpoint: .init(host: name, port: 15012), tls: tls),
                                      network: network.host(IPAddress("10.9.0.2")!),
                                      resolve: { _, _, done in done(.success([GRPCChannelTests.istiodAddress])) })
            channels.append(channel)
            return channel
        }

        func run(seconds: Double) {
            _ = loop.runUntilIdle()
            var left = UInt64(seconds * 1e9)
            while left > 0 {
                let step = min(left, 100_000_000)
                loop.advanceClock(by: step)
                _ = loop.runUntilIdle()
                left -= step
            }
        }
    }

    /// Opens one unary call and collects what comes back.
    final class Outcome {
        var messages: [[UInt8]] = []
        var ended: GRPCCall.Outcome?
    }

    static func unary(_ channel: GRPCChannel, _ body: [UInt8] = [1, 2, 3]) -> Outcome {
        let o = Outcome()
        let head = GRPCRequestHead(path: "/test.Echo/Call", authority: "istiod:15012", token: "t", clusterID: "c")
        let call = channel.call(headers: head.headers.map { H2Header($0.name, $0.value) }, onMessage: { o.messages.append($0) },
                                onEnd: { o.ended = $0 })
        call.send(body)
        call.finishSending()
        return o
    }

    @Test func aCallGoesThroughAndEndsWithTheTrailersStatus() throws {
        let h = try Harness()
        try h.serve()
        let channel = try h.channel()
        var closed: String?
        channel.onClosed = { closed = $0 }
        let o = Self.unary(channel, [9, 8, 7])
        channel.start()
        h.run(seconds: 1)
        #expect(o.messages == [[9, 8, 7]])
        guard case let .status(status)? = o.ended else {
            Issue.record("call did not end: \(String(describing: o.ended))")
            return
        }
        #expect(status == GRPCStatus(.ok, "fine"))
        #expect(h.server?.requests.first?.contains(H2Header("te", "trailers")) == true)
        #expect(channel.isReady && closed == nil)
    }

    @Test func aSilentServerFailsAtTheFiveSecondDeadlineBeforeAnyRequest() throws {
        let h = try Harness()
        try h.serve(handshake: false)
        let channel = try h.channel()
        var closed: String?
        channel.onClosed = { closed = $0 }
        let o = Self.unary(channel)
        channel.start()
        h.run(seconds: 4.9)
        #expect(closed == nil && o.ended == nil)
        h.run(seconds: 0.2)
        #expect(closed?.contains("no connection within 5") == true && closed?.contains("TLS handshake") == true, "\(String(describing: closed))")
        guard case .connectionFailed? = o.ended else {
            Issue.record("expected a failed connection, got \(String(describing: o.ended))")
            return
        }
        #expect(h.server?.requests.isEmpty == true)
    }

    @Test func aBlackholedAddressFailsAtTheDeadline() throws {
        let h = try Harness()
        h.network.blackhole(Self.istiodAddress)
        let channel = try h.channel()
        var closed: String?
        channel.onClosed = { closed = $0 }
        channel.start()
        h.run(seconds: 5.1)
        #expect(closed?.contains("TCP connect") == true, "\(String(describing: closed))")
    }

    @Test(arguments: [("istiod.other.svc", "bundle-root.pem", true), ("istiod.istio-system.svc", "bundle-root2.pem", true),
                      ("istiod.istio-system.svc", "bundle-root.pem", false)])
    func aServerFailingACheckNeverSeesARequest(name: String, bundle: String, selectH2: Bool) throws {
        let h = try Harness()
        try h.serve(selectH2: selectH2)
        let channel = try h.channel(name: name, bundle: bundle)
        var closed: String?
        channel.onClosed = { closed = $0 }
        let o = Self.unary(channel)
        channel.start()
        h.run(seconds: 1)
        #expect(closed?.contains("TLS handshake") == true, "\(String(describing: closed))")
        guard case .connectionFailed? = o.ended else {
            Issue.record("expected a failed connection, got \(String(describing: o.ended))")
            return
        }
        #expect(h.server?.plaintextReceived == 0, "the server got HTTP/2 bytes")
    }

    @Test func aCompressedOrOversizedMessageEndsTheCallWithAReason() throws {
        for (raw, expected) in [([1, 0, 0, 0, 1, 0x41] as [UInt8], "compressed message"), ([0, 0, 0x10, 0, 1] as [UInt8], "exceeds the 1024-byte limit")] {
            let h = try Harness()
            h.configure = { $0.rawReply = raw }
            try h.serve()
            let channel = try h.channel()
            let o = Outcome()
            let head = GRPCRequestHead(path: "/test.Echo/Call", authority: "istiod:15012", token: "t", clusterID: "c")
            let call = channel.call(headers: head.headers.map { H2Header($0.name, $0.value) }, maxMessageBytes: 1024,
                                    onMessage: { o.messages.append($0) }, onEnd: { o.ended = $0 })
            call.send([1])
            call.finishSending()
            channel.start()
            h.run(seconds: 1)
            guard case let .status(status)? = o.ended else {
                Issue.record("call did not end: \(String(describing: o.ended))")
                continue
            }
            #expect(status.message.contains(expected), "\(status)")
            #expect(o.messages.isEmpty)
            #expect(channel.isReady, "one bad call does not take the channel down")
        }
    }

    @Test func garbageInsteadOfHTTP2ClosesTheChannelWithAReason() throws {
        let h = try Harness()
        h.configure = { $0.garbage = Array("HTTP/1.1 400 Bad Request\r\n\r\nnot http/2 at all".utf8) }
        try h.serve()
        let channel = try h.channel()
        var closed: String?
        channel.onClosed = { closed = $0 }
        let o = Self.unary(channel)
        channel.start()
        h.run(seconds: 1)
        #expect(closed?.contains("HTTP/2") == true, "\(String(describing: closed))")
        #expect(o.ended != nil)
    }

    @Test func keepalivePingsEveryThirtySecondsAndAnUnansweredOneCloses() throws {
        let h = try Harness()
        try h.serve()
        let channel = try h.channel()
        var closed: String?
        channel.onClosed = { closed = $0 }
        channel.start()
        h.run(seconds: 1)
        #expect(channel.isReady)
        h.run(seconds: 28.5)
        #expect(h.server?.pings == 0, "pinged before 30 s")
        h.run(seconds: 1)
        #expect(h.server?.pings == 1)
        // The server stops answering. At 60 s the PING of 30 s was answered: a new one goes; at
        // 90 s that one is still unanswered and the channel closes.
        h.server?.deaf = true
        h.run(seconds: 30)
        #expect(closed == nil)
        h.run(seconds: 30)
        #expect(closed?.contains("keepalive PING unanswered") == true, "\(String(describing: closed))")
    }
}

/// A minimal gRPC server over TLS + nghttp2 in memory: echoes each request message, then OK.
final class MemoryGRPCServer: TCPStreamDelegate, H2SessionDelegate {
    let stream: TCPStream
    let tls: TLSEngine
    let silent: Bool
    var h2: H2Session?
    var requests: [[H2Header]] = []
    var plaintextReceived = 0
    var pings = 0
    /// Stops reading: nothing it receives is answered any more.
    var deaf = false
    /// Sent as the response DATA instead of the echo (a hand-made gRPC frame).
    var rawReply: [UInt8]?
    /// Sent instead of HTTP/2 frames once TLS is up.
    var garbage: [UInt8]?
    private var body: [Int32: [UInt8]] = [:]
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    init(stream: TCPStream, tls: TLSEngine, silent: Bool) {
        self.stream = stream
        self.tls = tls
        self.silent = silent
    }

    deinit { buffer.deallocate() }

    func tcpStreamConnected(_ stream: TCPStream) {}
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        guard !silent, !deaf else { return }
        tls.feed(bytes)
        if h2 == nil {
            guard tls.handshake() == .complete else {
                tls.takeCiphertext { stream.write($0) }
                return
            }
            h2 = try? H2Session(role: .server, delegate: self)
            if let garbage {
                _ = garbage.withUnsafeBytes { tls.write($0) }
                tls.takeCiphertext { stream.write($0) }
                return
            }
        }
        while case let .bytes(n) = tls.read(into: buffer) {
            plaintextReceived += n
            let frames = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            // A lone PING frame (type 6, 8-byte payload, no ACK flag): the client's keepalive.
            if n == 17, frames[3] == 6, frames[4] & 1 == 0 { pings += 1 }
            try? h2?.receive(frames)
        }
        flush()
    }

    func flush() {
        if let h2 { _ = try? h2.produce { _ = tls.write($0) } }
        tls.takeCiphertext { stream.write($0) }
    }

    func tcpStreamReadClosed(_ stream: TCPStream) {}
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) {}

    func h2(_ session: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) {
        requests.append(headers)
        try? session.respond(stream: stream, status: 200, headers: [H2Header("content-type", "application/grpc")])
    }
    func h2(_ session: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) {}
    func h2(_ session: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        body[stream, default: []] += Array(bytes)
        session.consume(stream: stream, bytes.count)
    }
    func h2(_ session: H2Session, endOfStream stream: Int32) {
        let echo = rawReply ?? GRPCMessageReader.frame(Array((body[stream] ?? []).dropFirst(5)))
        echo.withUnsafeBytes { session.send(stream: stream, $0) }
        session.finish(stream: stream, trailers: [H2Header("grpc-status", "0"), H2Header("grpc-message", "fine")])
    }
    func h2(_ session: H2Session, closed stream: Int32, errorCode: UInt32) {}
    func h2(_ session: H2Session, drained stream: Int32) {}
    func h2(_ session: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) {}
    func h2PingAcknowledged(_ session: H2Session) {}
}
