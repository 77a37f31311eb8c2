import Foundation
import HBONECore
import HBONEEventLoop
import HBONETLS
import HBONEH2
import HBONEGRPC
import HBONEConfig

/// One TLS + HTTP/2 connection to a gRPC server (istiod's xDS or CA), confined to one loop, carrying
/// any number of calls as streams. It resolves the host off the loop, connects, verifies the
/// server's certificate and name, requires ALPN h2 and waits for the server's SETTINGS, all within
/// `connectTimeout`; calls opened before that wait and none is sent to a server that failed any step.
/// Once up, it PINGs every `keepaliveInterval` (grpc-go servers drop clients pinging more often than
/// every 30 s) and closes when a PING goes unanswered until the next one is due.
///
/// A closed channel stays closed: its owner makes a new one (after its backoff).
public final class GRPCChannel {
    public struct Target: Sendable {
        public var endpoint: ControlPlaneSettings.Endpoint
        public var tls: ControlPlaneTLSContext
        /// The name istiod's certificate must carry; `endpoint.host` unless set.
        public var alternativeName: String?

        public init(endpoint: ControlPlaneSettings.Endpoint, tls: ControlPlaneTLSContext, alternativeName: String? = nil) {
            self.endpoint = endpoint
            self.tls = tls
            self.alternativeName = alternativeName
        }
    }

    enum Phase: Equatable { case idle, resolving, connecting, handshaking, settings, ready, closed }

    public let loop: EventLoop
    public let target: Target
    let network: StreamNetwork
    /// Looks names up; the default runs the system resolver on a thread of its own.
    let resolve: (String, UInt16, @escaping (Result<[SocketAddress], SystemError>) -> Void) -> Void
    public var connectTimeout: Duration = .seconds(5)
    public var keepaliveInterval: Duration = .seconds(30)
    /// Called once, at the end of the loop pass in which the channel closed, with the reason.
    public var onClosed: ((String) -> Void)?
    /// Called once when the channel can carry calls.
    public var onReady: (() -> Void)?

    private(set) var phase: Phase = .idle
    private var tcp: TCPStream?
    private var tls: TLSEngine?
    private var h2: H2Session?
    private var calls: [Int32: GRPCCall] = [:]
    private var waiting: [GRPCCall] = []
    private var connectTimer: EventLoop.TimerID?
    private var keepaliveTimer: EventLoop.TimerID?
    private var pingOutstanding = false
    private var pumpScheduled = false
    private var goawayReceived = false
    private let scratch = TLSScratch()
    /// Where the connection went (for logs and the admin view).
    public private(set) var peer: SocketAddress?

    public init(loop: EventLoop, target: Target, network: StreamNetwork = SocketNetwork(),
                resolve: ((String, UInt16, @escaping (Result<[SocketAddress], SystemError>) -> Void) -> Void)? = nil) {
        self.loop = loop
        self.target = target
        self.network = network
        self.resolve = resolve ?? GRPCChannel.threadResolver(loop: loop)
    }

    public var isReady: Bool { phase == .ready }
    public var isClosed: Bool { phase == .closed }

    /// The system resolver on a short-lived thread; the answer comes back as a task on `loop`.
    static func threadResolver(loop: EventLoop) -> (String, UInt16, @escaping (Result<[SocketAddress], SystemError>) -> Void) -> Void {
        { host, port, done in
            let box = LoopBound(done)
            Thread.detachNewThread {
                let result = Socket.resolve(host: host, port: port)
                loop.post { box.value(result) }
            }
        }
    }

    /// Starts connecting. The connect timeout covers resolution, TCP, TLS and the SETTINGS exchange.
    public func start() {
        guard phase == .idle else { return }
        phase = .resolving
        connectTimer = loop.schedule(after: connectTimeout.nanoseconds) { [weak self] in
            guard let self, self.phase != .ready, self.phase != .closed else { return }
            self.fail("no connection within \(self.connectTimeout) (\(self.phaseText))")
        }
        let endpoint = target.endpoint
        resolve(endpoint.host, endpoint.port) { [weak self] result in
            guard let self, self.phase == .resolving else { return }
            switch result {
            case let .failure(error): self.fail("cannot resolve \(endpoint.host): \(error)")
            case let .success(addresses): self.connect(to: addresses[0])
            }
        }
    }

    private var phaseText: String {
        switch phase {
        case .idle, .resolving: "resolving \(target.endpoint.host)"
        case .connecting: "TCP connect"
        case .handshaking: "TLS handshake"
        case .settings: "waiting for the server's HTTP/2 SETTINGS"
        case .ready: "ready"
        case .closed: "closed"
        }
    }

    private func connect(to address: SocketAddress) {
        peer = address
        phase = .connecting
        do {
            tls = try TLSEngine(controlPlane: target.tls, serverName: target.endpoint.host, alternativeName: target.alternativeName)
            tcp = try network.connect(to: address, mark: nil, loop: loop, delegate: self)
        } catch {
            fail("cannot connect to \(address): \(error)")
        }
    }

    /// Opens a call (a stream) to `path` with `headers` (the caller's request head, pseudo-headers
    /// included). It waits if the channel is still connecting; on a closed channel it ends at once.
    public func call(headers: [H2Header], maxMessageBytes: Int = GRPCMessageReader.defaultMaxMessageBytes,
                     onMessage: @escaping ([UInt8]) -> Void, onEnd: @escaping (GRPCCall.Outcome) -> Void) -> GRPCCall {
        let call = GRPCCall(channel: self, headers: headers, maxMessageBytes: maxMessageBytes, onMessage: onMessage, onEnd: onEnd)
        switch phase {
        case .ready: submit(call)
        case .closed: end(call, .connectionFailed("the channel is closed"))
        default: waiting.append(call)
        }
        return call
    }

    private func submit(_ call: GRPCCall) {
        guard let h2, !goawayReceived else {
            end(call, .status(GRPCStatus(.unavailable, "received prior goaway")))
            return
        }
        do {
            let id = try h2.request(call.headers)
            call.stream = id
            calls[id] = call
            for m in call.queued { m.withUnsafeBytes { h2.send(stream: id, $0) } }
            call.queued = []
            if call.finishRequested { h2.finish(stream: id) }
            schedulePump()
        } catch {
            end(call, .status(GRPCStatus(.internal, "cannot open a stream: \(error)")))
        }
    }

    // MARK: Calls' requests

    func send(_ call: GRPCCall, _ framed: [UInt8]) {
        guard let id = call.stream, let h2 else {
            if call.stream == nil && !call.ended { call.queued.append(framed) }
            return
        }
        framed.withUnsafeBytes { h2.send(stream: id, $0) }
        schedulePump()
    }

    func finish(_ call: GRPCCall) {
        guard let id = call.stream, let h2 else {
            call.finishRequested = true
            return
        }
        h2.finish(stream: id)
        schedulePump()
    }

    func cancel(_ call: GRPCCall, reason: String) {
        if let id = call.stream, let h2 {
            h2.reset(stream: id, errorCode: H2ErrorCode.cancel)
            calls[id] = nil
            schedulePump()
        }
        waiting.removeAll { $0 === call }
        end(call, .status(GRPCStatus(.cancelled, reason)))
    }

    /// Ends `call` once, at the end of this loop pass (never inside nghttp2's callbacks).
    private func end(_ call: GRPCCall, _ outcome: GRPCCall.Outcome) {
        guard !call.ended else { return }
        call.ended = true
        if let id = call.stream { calls[id] = nil }
        loop.deferUntilEndOfPass { call.onEnd(outcome); call.release() }
    }

    // MARK: Closing

    /// Closes the channel: every call ends (with UNAVAILABLE once it was up, else as a failed
    /// connection), timers stop, the socket is aborted.
    public func close(_ reason: String) { fail(reason) }

    private func fail(_ reason: String) {
        guard phase != .closed else { return }
        let outcome = closingOutcome(reason)
        phase = .closed
        loop.cancel(connectTimer)
        loop.cancel(keepaliveTimer)
        let ending = calls.keys.sorted().compactMap { calls[$0] } + waiting
        calls = [:]
        waiting = []
        for call in ending { end(call, outcome) }
        flushTLS()
        loop.deferUntilEndOfPass { [weak self] in self?.teardown(reason) }
    }

    /// How open calls end: UNAVAILABLE once the channel was up, else as a connection that failed.
    private func closingOutcome(_ reason: String) -> GRPCCall.Outcome {
        guard phase == .ready else { return .connectionFailed(reason) }
        return .status(GRPCStatus(.unavailable, goawayReceived ? "received prior goaway; \(reason)" : reason))
    }

    private func teardown(_ reason: String) {
        tcp?.abort()
        tcp = nil
        h2 = nil
        tls = nil
        let closed = onClosed
        onClosed = nil
        onReady = nil
        closed?(reason)
    }

    // MARK: Bytes

    private func process() {
        guard let tls, phase != .closed else { return }
        if phase == .handshaking {
            switch tls.handshake() {
            case .inProgress:
                flushTLS()
                return
            case let .failed(error):
                flushTLS()
                fail("TLS handshake with \(target.endpoint.host) failed: \(error.reason)")
                return
            case .complete:
                do {
                    h2 = try H2Session(role: .client, settings: H2Settings(), delegate: self)
                } catch {
                    fail("HTTP/2 session: \(error)")
                    return
                }
                phase = .settings
                schedulePump()
            }
        }
        while phase == .settings || phase == .ready {
            switch tls.read(into: scratch.plaintext) {
            case let .bytes(n):
                do {
                    try h2?.receive(UnsafeRawBufferPointer(rebasing: scratch.plaintext[0..<n]))
                } catch {
                    fail("HTTP/2 protocol error from the server: \(error)")
                    return
                }
            case .needMore:
                pump()
                return
            case .closed:
                fail("the server closed the connection (TLS close_notify)")
                return
            case let .failed(error):
                flushTLS()
                fail("TLS: \(error.reason)")
                return
            }
        }
    }

    private func pump() {
        guard let h2, let tls, phase == .settings || phase == .ready else { return }
        if h2.wantsWrite {
            do {
                let failure = try TLSRecordGather.write(to: tls, scratch: scratch) { append in _ = try h2.produce(append) }
                if let failure { Bug.report("control-plane TLS write failed: \(failure)") }
            } catch {
                fail("HTTP/2 send: \(error)")
                return
            }
        }
        flushTLS()
        if h2.isFinished { fail(goawayReceived ? "the server ended the connection (GOAWAY)" : "HTTP/2 session ended") }
    }

    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        loop.deferUntilEndOfPass { [weak self] in
            guard let self else { return }
            self.pumpScheduled = false
            self.pump()
        }
    }

    private func flushTLS() {
        guard let tls, let tcp else { return }
        tls.takeCiphertext { tcp.write($0) }
    }

    private func becameReady() {
        phase = .ready
        loop.cancel(connectTimer)
        connectTimer = nil
        tls?.releaseHandshakeMemory()
        scheduleKeepalive()
        let queued = waiting
        waiting = []
        for call in queued where !call.ended { submit(call) }
        onReady?()
        onReady = nil
    }

    private func scheduleKeepalive() {
        keepaliveTimer = loop.schedule(after: keepaliveInterval.nanoseconds) { [weak self] in
            guard let self, self.phase == .ready else { return }
            if self.pingOutstanding {
                self.fail("keepalive PING unanswered for \(self.keepaliveInterval)")
                return
            }
            self.pingOutstanding = true
            self.h2?.ping()
            self.schedulePump()
            self.scheduleKeepalive()
        }
    }
}

extension GRPCChannel: TCPStreamDelegate {
    public func tcpStreamConnected(_ stream: TCPStream) {
        guard phase == .connecting else { return }
        phase = .handshaking
        process()
    }

    public func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        tls?.feed(bytes)
        process()
    }

    public func tcpStreamReadClosed(_ stream: TCPStream) {
        fail(phase == .handshaking ? "the server closed the connection during the TLS handshake" : "the server closed the connection")
    }

    public func tcpStream(_ stream: TCPStream, wrote count: Int) {}

    public func tcpStream(_ stream: TCPStream, failed errno: Int32) {
        fail(phase == .connecting ? "cannot connect to \(peer.map(\.description) ?? "?"): \(String(cString: strerror(errno)))"
                                  : "connection lost: \(String(cString: strerror(errno)))")
    }
}

extension GRPCChannel: H2SessionDelegate {
    public func h2(_ session: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) {
        session.reset(stream: stream, errorCode: H2ErrorCode.refusedStream)   // a server may not open streams to us
    }

    public func h2(_ session: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) {
        guard let call = calls[stream] else { return }
        call.httpStatus = status
        if endStream {
            // Trailers-only: the status is in these headers.
            end(call, .status(GRPCStatus(trailers: headers.map { ($0.name, $0.value) }, httpStatus: status)))
            return
        }
        let contentType = headers.first { $0.name == "content-type" }?.value ?? ""
        if status != 200 || !contentType.hasPrefix("application/grpc") {
            session.reset(stream: stream, errorCode: H2ErrorCode.cancel)
            let code = status == 200 ? GRPCStatus.Code.unknown : GRPCStatus.code(forHTTPStatus: status)
            end(call, .status(GRPCStatus(code, "not a gRPC response (HTTP \(status), content-type \"\(contentType.prefix(40))\")")))
            schedulePump()
        }
    }

    public func h2(_ session: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        session.consume(stream: stream, bytes.count)
        guard let call = calls[stream], !call.ended else { return }
        do {
            for message in try call.reader.feed(bytes) {
                guard !call.ended else { break }
                call.onMessage(message)
            }
        } catch {
            session.reset(stream: stream, errorCode: H2ErrorCode.cancel)
            let code: GRPCStatus.Code = if case .tooLarge = error { .resourceExhausted } else { .internal }
            end(call, .status(GRPCStatus(code, "\(error)")))
            schedulePump()
        }
    }

    public func h2(_ session: H2Session, trailers stream: Int32, headers: [H2Header]) {
        calls[stream]?.trailers = headers.map { ($0.name, $0.value) }
    }

    public func h2(_ session: H2Session, endOfStream stream: Int32) {
        guard let call = calls[stream] else { return }
        guard let trailers = call.trailers else {
            end(call, .status(GRPCStatus(trailers: [], httpStatus: call.httpStatus)))
            return
        }
        if !call.reader.isAtMessageBoundary {
            end(call, .status(GRPCStatus(.internal, "the stream ended inside a message")))
            return
        }
        end(call, .status(GRPCStatus(trailers: trailers, httpStatus: call.httpStatus)))
    }

    public func h2(_ session: H2Session, closed stream: Int32, errorCode: UInt32) {
        guard let call = calls[stream] else { return }
        let message = errorCode == H2ErrorCode.refusedStream ? "stream refused by the server" : "stream reset by the server (HTTP/2 error \(errorCode))"
        end(call, .status(GRPCStatus(errorCode == H2ErrorCode.cancel ? .cancelled : .unavailable, message)))
    }

    public func h2(_ session: H2Session, drained stream: Int32) {}

    public func h2(_ session: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) {
        goawayReceived = true
        // Streams the server never saw end now; the rest may still finish.
        for (id, call) in calls where id > lastStreamID { end(call, .status(GRPCStatus(.unavailable, "received prior goaway"))) }
    }

    public func h2PingAcknowledged(_ session: H2Session) { pingOutstanding = false }

    public func h2PeerSettingsReceived(_ session: H2Session) {
        if phase == .settings { becameReady() }
    }
}

/// A closure taken to another thread only to be posted back to its own loop and called there.
struct LoopBound<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
