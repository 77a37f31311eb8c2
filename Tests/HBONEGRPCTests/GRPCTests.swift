import Testing
@testable import HBONEGRPC

/// gRPC's wire rules as the control-plane client applies them, without a socket.
@Suite struct GRPCMessageReaderTests {
    @Test func messagesSplitAnyWayComeOutWhole() throws {
        let a = Array("first message".utf8), b = [UInt8](repeating: 7, count: 70_000), c: [UInt8] = []
        let wire = GRPCMessageReader.frame(a) + GRPCMessageReader.frame(b) + GRPCMessageReader.frame(c)
        for chunk in [1, 2, 4, 5, 6, 1000, wire.count] {
            var reader = GRPCMessageReader()
            var got: [[UInt8]] = []
            var i = 0
            while i < wire.count {
                got += try reader.feed(wire[i..<min(i + chunk, wire.count)])
                i += chunk
            }
            #expect(got == [a, b, c], "chunks of \(chunk)")
            #expect(reader.isAtMessageBoundary)
        }
    }

    @Test func aLengthOverTheCapIsRefusedBeforeAnyOfItIsBuffered() {
        var reader = GRPCMessageReader(maxMessageBytes: 1024)
        #expect(throws: GRPCMessageReader.Failure.tooLarge(length: 0x7fff_ffff, limit: 1024)) {
            _ = try reader.feed([0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3])
        }
        #expect(reader.buffered == 0)
        // The stream stays failed.
        #expect(throws: GRPCMessageReader.Failure.tooLarge(length: 0x7fff_ffff, limit: 1024)) { _ = try reader.feed(GRPCMessageReader.frame([1])) }
    }

    @Test(arguments: [(UInt8(1), GRPCMessageReader.Failure.compressed), (2, .badFlag(2)), (0x80, .badFlag(0x80))])
    func flagsOtherThanUncompressedAreRefused(flag: UInt8, failure: GRPCMessageReader.Failure) {
        var reader = GRPCMessageReader()
        #expect(throws: failure) { _ = try reader.feed([flag, 0, 0, 0, 1, 9]) }
    }

    @Test func aStreamCutInsideAMessageIsNotAtABoundary() throws {
        var reader = GRPCMessageReader()
        #expect(try reader.feed([0, 0, 0, 0, 4, 1, 2]).isEmpty)
        #expect(!reader.isAtMessageBoundary)
        #expect(reader.buffered == 7)
    }

    @Test func framesCarryABigEndianLength() {
        #expect(GRPCMessageReader.frame([UInt8](repeating: 0, count: 0x0102_03)).prefix(5) == [0, 0, 1, 2, 3])
    }
}

@Suite struct GRPCStatusTests {
    @Test func statusAndPercentDecodedMessageComeFromTrailers() {
        let s = GRPCStatus(trailers: [("grpc-status", "16"), ("grpc-message", "request%20impersonation%20authentication%20failure")], httpStatus: 200)
        #expect(s == GRPCStatus(.unauthenticated, "request impersonation authentication failure"))
        #expect(s.description == "UNAUTHENTICATED: request impersonation authentication failure")
    }

    @Test(arguments: [(400, GRPCStatus.Code.internal), (401, .unauthenticated), (403, .permissionDenied), (404, .unimplemented),
                      (429, .unavailable), (502, .unavailable), (503, .unavailable), (504, .unavailable), (200, .unknown), (500, .unknown)])
    func withoutGrpcStatusTheHTTPStatusDecides(http: Int, code: GRPCStatus.Code) {
        #expect(GRPCStatus(trailers: [], httpStatus: http).code == code)
    }

    @Test func anUnknownCodeIsUNKNOWNAndKeepsWhatWasSaid() {
        let s = GRPCStatus(trailers: [("grpc-status", "99"), ("grpc-message", "odd")], httpStatus: 200)
        #expect(s.code == .unknown && s.message.contains("99") && s.message.contains("odd"))
    }

    @Test(arguments: [("plain", "plain"), ("a%2Fb", "a/b"), ("caf%C3%A9", "café"), ("100%", "100%"), ("%zz", "%zz"), ("%4", "%4")])
    func percentDecodingNeverFails(encoded: String, decoded: String) {
        #expect(GRPCStatus.percentDecoded(encoded) == decoded)
    }
}

@Suite struct ReconnectBackoffTests {
    @Test func recyclesReconnectAtOnceAndFailuresBackOffToFifteenSeconds() {
        var b = ReconnectBackoff()
        #expect(b.delay(after: .connectionFailed) == .milliseconds(20))
        #expect(b.delay(after: .status(GRPCStatus(.permissionDenied))) == .milliseconds(40))
        #expect(b.delay(after: .status(GRPCStatus(.unavailable, "transport is closing"))) == .milliseconds(10))
        for _ in 0..<20 { _ = b.delay(after: .connectionFailed) }
        #expect(b.delay(after: .connectionFailed) == .seconds(15))
        #expect(b.delay(after: .clean) == .milliseconds(10))
    }

    @Test(arguments: [
        (GRPCStatus(.unavailable, "transport is closing"), true), (GRPCStatus(.unavailable, "received prior goaway"), true),
        (GRPCStatus(.unavailable, "connection refused"), false), (GRPCStatus(.cancelled), true), (GRPCStatus(.deadlineExceeded), true),
        (GRPCStatus(.unknown), true), (GRPCStatus(.unauthenticated), false), (GRPCStatus(.internal), false),
    ])
    func whichStatusesAreRecycles(status: GRPCStatus, recycle: Bool) {
        #expect(ReconnectBackoff.isRecycle(.status(status)) == recycle)
    }

    @Test func jitterStaysWithinAFifth() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var b = ReconnectBackoff()
            let d = b.jitteredDelay(after: .connectionFailed, using: &rng)
            #expect(d >= .milliseconds(16) && d <= .milliseconds(24))
        }
    }
}

@Suite struct GRPCRequestHeadTests {
    @Test func protocolHeadersComeFirstAndExtrasCannotReplaceThem() {
        let head = GRPCRequestHead(path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
                                   authority: "istiod.istio-system.svc:15012", token: "tok", clusterID: "east",
                                   extra: [("X-Tenant", "blue"), ("Authorization", "Bearer forged"), (":path", "/evil"), ("TE", "gzip")])
        let h = head.headers
        #expect(h.map(\.name) == [":method", ":scheme", ":path", ":authority", "content-type", "te", "authorization", "clusterid", "x-tenant"])
        #expect(h.first { $0.name == "authorization" }?.value == "Bearer tok")
        #expect(h.first { $0.name == ":path" }?.value.hasSuffix("DeltaAggregatedResources") == true)
        #expect(h.first { $0.name == "te" }?.value == "trailers")
    }

    @Test func noTokenSendsNoAuthorization() {
        #expect(!GRPCRequestHead(path: "/x", authority: "a", token: nil, clusterID: "c").headers.contains { $0.name == "authorization" })
    }
}
