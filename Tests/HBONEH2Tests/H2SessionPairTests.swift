import Testing
@testable import HBONEH2

/// Records what a session reports.
final class Events: H2SessionDelegate {
    var requests: [(Int32, [H2Header])] = []
    var responses: [(Int32, Int)] = []
    var data: [Int32: [UInt8]] = [:]
    var ended: Set<Int32> = []
    var closed: [Int32: UInt32] = [:]
    var trailers: [Int32: [H2Header]] = [:]
    var goaways = 0
    var pings = 0
    var autoConsume = true
    weak var session: H2Session?

    func h2(_ s: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) { requests.append((stream, headers)) }
    func h2(_ s: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) { responses.append((stream, status)) }
    func h2(_ s: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        data[stream, default: []] += bytes
        if autoConsume { s.consume(stream: stream, bytes.count) }
    }
    func h2(_ s: H2Session, endOfStream stream: Int32) { ended.insert(stream) }
    func h2(_ s: H2Session, trailers stream: Int32, headers: [H2Header]) {
        precondition(!ended.contains(stream), "trailers after END_STREAM")   // they come before the end they carry
        trailers[stream] = headers
    }
    func h2(_ s: H2Session, closed stream: Int32, errorCode: UInt32) { closed[stream] = errorCode }
    func h2(_ s: H2Session, drained stream: Int32) {}
    func h2(_ s: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) { goaways += 1 }
    func h2PingAcknowledged(_ s: H2Session) { pings += 1 }
}

struct Pair {
    let client: H2Session, server: H2Session
    let c = Events(), s = Events()

    init(settings: H2Settings = H2Settings()) throws {
        client = try H2Session(role: .client, settings: settings, delegate: nil)
        server = try H2Session(role: .server, settings: settings, delegate: nil)
        client.delegate = c
        server.delegate = s
    }

    /// Moves bytes both ways until both are quiet.
    func run() throws {
        for _ in 0..<200 {
            var moved = 0
            var out: [UInt8] = []
            moved += try client.produce { out += $0 }
            try out.withUnsafeBytes { try server.receive($0) }
            out = []
            moved += try server.produce { out += $0 }
            try out.withUnsafeBytes { try client.receive($0) }
            if moved == 0 { return }
        }
    }

    /// A CONNECT stream answered 200, ready for data both ways.
    func tunnel() throws -> Int32 {
        let id = try client.connect(authority: "127.0.0.20:8080", headers: [])
        try run()
        try server.respond(stream: id, status: 200, headers: [])
        try run()
        return id
    }
}

@Suite struct H2SessionPairTests {
    /// A gRPC-shaped exchange: POST with a streamed body both ways, and the answer's status in
    /// trailers that end the stream.
    @Test func aRequestStreamsBothWaysAndEndsWithTrailers() throws {
        let p = try Pair()
        let id = try p.client.request([H2Header(":method", "POST"), H2Header(":scheme", "https"),
                                       H2Header(":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"),
                                       H2Header(":authority", "istiod.istio-system.svc:15012"),
                                       H2Header("content-type", "application/grpc"), H2Header("te", "trailers")])
        [UInt8]([0, 0, 0, 0, 2, 8, 1]).withUnsafeBytes { p.client.send(stream: id, $0) }
        try p.run()
        let request = try #require(p.s.requests.first)
        #expect(request.1[header: ":method"] == "POST" && request.1[header: "te"] == "trailers")
        #expect(p.s.data[id] == [0, 0, 0, 0, 2, 8, 1])
        try p.server.respond(stream: id, status: 200, headers: [H2Header("content-type", "application/grpc")])
        [UInt8]([0, 0, 0, 0, 1, 7]).withUnsafeBytes { p.server.send(stream: id, $0) }
        p.server.finish(stream: id, trailers: [H2Header("grpc-status", "14"), H2Header("grpc-message", "transport%20is%20closing")])
        try p.run()
        #expect(p.c.responses.first?.1 == 200)
        #expect(p.c.data[id] == [0, 0, 0, 0, 1, 7])
        #expect(p.c.trailers[id]?[header: "grpc-status"] == "14")
        #expect(p.c.trailers[id]?[header: "grpc-message"] == "transport%20is%20closing")
        #expect(p.c.ended.contains(id))
        p.client.finish(stream: id)
        try p.run()
        #expect(p.c.closed[id] == 0 && p.s.closed[id] == 0)
    }

    /// A trailers-only answer (an error before any message): one HEADERS block with the status.
    @Test func aTrailersOnlyAnswerArrivesAsAResponseThatEndsTheStream() throws {
        let p = try Pair()
        let id = try p.client.request([H2Header(":method", "POST"), H2Header(":scheme", "https"), H2Header(":path", "/x.Y/Z"),
                                       H2Header(":authority", "a"), H2Header("te", "trailers")])
        p.client.finish(stream: id)
        try p.run()
        try p.server.respond(stream: id, status: 503, headers: [H2Header("grpc-status", "16")])
        try p.run()
        #expect(p.c.responses.first?.1 == 503)
        #expect(p.c.trailers[id] == nil)
        #expect(p.c.closed[id] == 0)
    }

    @Test func connectShapeAndDataBothWays() throws {
        let p = try Pair()
        let id = try p.client.connect(authority: "127.0.0.20:8080", headers: [H2Header("baggage", "k8s.namespace.name=payments")])
        try p.run()
        #expect(p.s.requests.count == 1)
        let headers = p.s.requests[0].1
        #expect(headers[header: ":method"] == "CONNECT")
        #expect(headers[header: ":authority"] == "127.0.0.20:8080")
        #expect(headers[header: ":path"] == nil)
        #expect(headers[header: ":scheme"] == nil)
        #expect(headers[header: "baggage"] == "k8s.namespace.name=payments")
        try p.server.respond(stream: id, status: 200)
        try p.run()
        #expect(p.c.responses.first?.1 == 200)
        Array("ping".utf8).withUnsafeBytes { p.client.send(stream: id, $0) }
        Array("pong".utf8).withUnsafeBytes { p.server.send(stream: id, $0) }
        try p.run()
        #expect(p.s.data[id] == Array("ping".utf8))
        #expect(p.c.data[id] == Array("pong".utf8))
    }

    /// A stream's send buffer outlives the pass that emptied it while the stream is busy, and is
    /// given back by the sweep after one in which nothing was queued.
    @Test func sendBufferIsKeptWhileBusyAndGivenBackWhenQuiet() throws {
        let p = try Pair()
        let id = try p.tunnel()
        [UInt8](repeating: 1, count: 8192).withUnsafeBytes { p.client.send(stream: id, $0) }
        try p.run()
        #expect(p.s.data[id]?.count == 8192)
        #expect(p.client.sendBufferCapacity(stream: id) >= 8192)
        p.client.releaseIdleMemory()              // queued since the last sweep: kept
        #expect(p.client.sendBufferCapacity(stream: id) >= 8192)
        p.client.releaseIdleMemory()              // a whole sweep without: given back
        #expect(p.client.sendBufferCapacity(stream: id) == 0)
        Array("more".utf8).withUnsafeBytes { p.client.send(stream: id, $0) }
        try p.run()
        #expect(p.s.data[id]?.count == 8196)
    }

    @Test func halfCloseEachWayThenStreamCloses() throws {
        let p = try Pair()
        let id = try p.client.connect(authority: "10.0.0.1:80", headers: [])
        try p.run()
        try p.server.respond(stream: id, status: 200)
        p.client.finish(stream: id)
        try p.run()
        #expect(p.s.ended.contains(id))
        #expect(p.s.closed[id] == nil)       // the server can still send
        Array("late".utf8).withUnsafeBytes { p.server.send(stream: id, $0) }
        p.server.finish(stream: id)
        try p.run()
        #expect(p.c.data[id] == Array("late".utf8))
        #expect(p.c.ended.contains(id))
        #expect(p.c.closed[id] == 0)
        #expect(p.s.closed[id] == 0)
    }

    @Test func errorStatusEndsTheStream() throws {
        let p = try Pair()
        let id = try p.client.connect(authority: "10.0.0.1:80", headers: [])
        try p.run()
        try p.server.respond(stream: id, status: 401)
        try p.run()
        #expect(p.c.responses.first?.1 == 401)
        #expect(p.s.closed[id] == nil || p.s.closed[id] == 0)
        // Our side of the stream is still open until the client gives up on it.
        p.client.reset(stream: id, errorCode: H2ErrorCode.cancel)
        try p.run()
        #expect(p.c.closed[id] != nil)
        #expect(p.client.openStreams == 0)
    }

    @Test func unconsumedDataStopsTheSenderAtTheWindow() throws {
        var settings = H2Settings()
        settings.streamWindow = 65_535
        settings.connectionWindow = 4 * 65_535
        let p = try Pair(settings: settings)
        p.s.autoConsume = false
        let id = try p.client.connect(authority: "10.0.0.1:80", headers: [])
        try p.run()
        try p.server.respond(stream: id, status: 200)
        let big = [UInt8](repeating: 7, count: 1 << 20)
        big.withUnsafeBytes { p.client.send(stream: id, $0) }
        try p.run()
        // Without consume the server holds at most one stream window.
        #expect(p.s.data[id]?.count == 65_535)
        p.server.consume(stream: id, 65_535)
        try p.run()
        #expect((p.s.data[id]?.count ?? 0) > 65_535)
    }

    @Test func resetReachesThePeer() throws {
        let p = try Pair()
        let id = try p.client.connect(authority: "10.0.0.1:80", headers: [])
        try p.run()
        p.client.reset(stream: id, errorCode: H2ErrorCode.cancel)
        try p.run()
        #expect(p.s.closed[id] == H2ErrorCode.cancel)
    }

    @Test func pingAndGoaway() throws {
        let p = try Pair()
        p.client.ping()
        try p.run()
        #expect(p.c.pings == 1)
        p.server.goaway()
        try p.run()
        #expect(p.c.goaways == 1)
        #expect(p.client.goawayReceived)
    }

    @Test func garbageIsAConnectionError() throws {
        let server = try H2Session(role: .server, delegate: nil)
        #expect(throws: H2Error.self) {
            try Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8).withUnsafeBytes { try server.receive($0) }
        }
    }
}

@Suite struct H2FrameSizeTests {
    /// Every DATA frame fits one full TLS record with its 9-byte header, whatever the peer allows.
    @Test func dataFramesFitOneTLSRecord() throws {
        let p = try Pair()
        let id = try p.client.connect(authority: "10.0.0.1:80", headers: [])
        try p.run()
        try p.server.respond(stream: id, status: 200)
        try p.run()
        let payload = [UInt8](repeating: 7, count: 100_000)
        payload.withUnsafeBytes { p.client.send(stream: id, $0) }
        var wire: [UInt8] = []
        try p.client.produce { wire += $0 }
        var offset = 0, dataBytes = 0, largest = 0
        while offset + 9 <= wire.count {
            let length = Int(wire[offset]) << 16 | Int(wire[offset + 1]) << 8 | Int(wire[offset + 2])
            if wire[offset + 3] == 0 {   // DATA
                dataBytes += length
                largest = max(largest, length + 9)
            }
            offset += 9 + length
        }
        #expect(offset == wire.count)
        #expect(dataBytes == payload.count)
        #expect(largest == 16384)
    }
}

@Suite struct H2HeaderIndexingTests {
    /// The HEADERS frame of one more CONNECT carrying `header`, on a connection that already sent
    /// one with it: its length, and what the server decoded.
    func secondHeadersFrame(_ header: H2Header) throws -> (length: Int, received: [H2Header]) {
        let p = try Pair()
        _ = try p.client.connect(authority: "10.0.0.1:80", headers: [header])
        try p.run()
        _ = try p.client.connect(authority: "10.0.0.1:80", headers: [header])
        var wire: [UInt8] = []
        try p.client.produce { wire += $0 }
        try wire.withUnsafeBytes { try p.server.receive($0) }
        var offset = 0, length = -1
        while offset + 9 <= wire.count {
            let n = Int(wire[offset]) << 16 | Int(wire[offset + 1]) << 8 | Int(wire[offset + 2])
            if wire[offset + 3] == 1 { length = n }   // HEADERS
            offset += 9 + n
        }
        return (length, p.s.requests.last?.1 ?? [])
    }

    /// A value sent again is one byte from the dynamic table; one sent with `indexed: false` is
    /// a literal every time (never indexed), so values unique to a stream do not evict the rest.
    @Test func aHeaderNotIndexedIsSentInFullEveryTime() throws {
        let value = String(repeating: "x", count: 64)
        let indexed = try secondHeadersFrame(H2Header("traceparent", value))
        let literal = try secondHeadersFrame(H2Header("traceparent", value, indexed: false))
        #expect(indexed.length > 0 && indexed.length < 8)
        #expect(literal.length > 40)
        #expect(indexed.received[header: "traceparent"] == value)
        #expect(literal.received[header: "traceparent"] == value)
    }
}

