import Testing
import HBONETestSupport
@testable import HBONETLS

/// TLS failures are named by OpenSSL's library and reason codes, not by its message text.
@Suite struct TLSFailureClassificationTests {
    /// TLS 1.3: the client finishes first; the server's rejection reaches it as an alert on its
    /// first read, which is classified as the peer's alert.
    @Test func aRejectedClientSeesThePeersAlert() throws {
        let pair = try makePair(clientCert: "certs-other/payments/checkout")
        let (c, s) = pair.run()
        guard case .failed = s else {
            Issue.record("the server should refuse, got \(s)")
            return
        }
        var code: String?
        if case let .failed(error) = c { code = error.code }
        if code == nil {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buffer.deallocate() }
            if case let .failed(error) = pair.client.read(into: buffer) { code = error.code }
        }
        #expect(code == "peer_alert")
    }

    /// A record that is not TLS 1.x at all: the versions cannot meet.
    @Test func aRecordWithAnImpossibleVersionIsAProtocolVersionFailure() throws {
        let pair = try makePair()
        let record: [UInt8] = [0x16, 0x09, 0x09, 0x00, 0x05, 1, 2, 3, 4, 5]
        record.withUnsafeBytes { pair.server.feed($0) }
        guard case let .failed(error) = pair.server.handshake() else {
            Issue.record("the server should fail")
            return
        }
        #expect(error.code == "protocol_version", "\(error)")
    }

    /// Plain HTTP on the TLS port is a handshake failure, not a version one.
    @Test func plainHTTPIsAHandshakeFailure() throws {
        let pair = try makePair()
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        request.withUnsafeBytes { pair.server.feed($0) }
        guard case let .failed(error) = pair.server.handshake() else {
            Issue.record("the server should fail")
            return
        }
        #expect(error.code == "handshake", "\(error)")
        #expect(error.reason.contains("http request"), "\(error)")
    }
}
