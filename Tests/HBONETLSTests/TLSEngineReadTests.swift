import Testing
import HBONETestSupport
@testable import HBONETLS

/// `read` answers "need more" by itself when nothing fed is left; these pin the cases where
/// SSL must still be asked: plaintext of a record larger than the buffer, a partial record,
/// close_notify, a failure.
@Suite struct TLSEngineReadTests {
    /// Everything `read` returns until `.needMore` (or another final status).
    func readAll(_ engine: TLSEngine, bufferSize: Int) -> (bytes: [UInt8], last: TLSEngine.ReadStatus) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 1)
        defer { buffer.deallocate() }
        var bytes: [UInt8] = []
        while true {
            let status = engine.read(into: buffer)
            guard case let .bytes(n) = status else { return (bytes, status) }
            bytes += buffer[0..<n]
        }
    }

    func established() throws -> EnginePair {
        let pair = try makePair()
        let (c, s) = pair.run()
        try #require(c == .complete && s == .complete)
        // The server's session tickets and the like, so each test starts from an empty read side.
        pair.server.takeCiphertext { pair.client.feed($0) }
        _ = readAll(pair.client, bufferSize: 1024)
        _ = readAll(pair.server, bufferSize: 1024)
        return pair
    }

    @Test func aRecordLargerThanTheBufferIsReadToTheEnd() throws {
        let pair = try established()
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(message.withUnsafeBytes { pair.client.write($0) } == nil)
        pair.client.takeCiphertext { pair.server.feed($0) }
        // After the first read all ciphertext is consumed; the rest waits inside SSL.
        let (bytes, last) = readAll(pair.server, bufferSize: 7)
        #expect(bytes == message)
        #expect(last == .needMore)
    }

    @Test func severalRecordsFedAtOnceAreAllRead() throws {
        let pair = try established()
        for text in ["one", "two", "three"] {
            #expect(Array(text.utf8).withUnsafeBytes { pair.client.write($0) } == nil)
        }
        pair.client.takeCiphertext { pair.server.feed($0) }
        let (bytes, last) = readAll(pair.server, bufferSize: 1024)
        #expect(String(decoding: bytes, as: UTF8.self) == "onetwothree")
        #expect(last == .needMore)
    }

    @Test func aRecordFedOneByteAtATimeIsReadWhenComplete() throws {
        let pair = try established()
        let message = Array("split across many feeds".utf8)
        #expect(message.withUnsafeBytes { pair.client.write($0) } == nil)
        var ciphertext: [UInt8] = []
        pair.client.takeCiphertext { ciphertext += $0 }
        var received: [UInt8] = []
        for (i, byte) in ciphertext.enumerated() {
            [byte].withUnsafeBytes { pair.server.feed($0) }
            let (bytes, last) = readAll(pair.server, bufferSize: 1024)
            received += bytes
            #expect(last == .needMore)
            if i < ciphertext.count - 1 { #expect(bytes.isEmpty) }
        }
        #expect(received == message)
    }

    @Test func closeNotifyIsReportedOnEveryRead() throws {
        let pair = try established()
        pair.client.shutdown()
        pair.client.takeCiphertext { pair.server.feed($0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        #expect(pair.server.read(into: buffer) == .closed)
        #expect(pair.server.read(into: buffer) == .closed)
    }

    @Test func aCorruptRecordFailsEveryRead() throws {
        let pair = try established()
        #expect(Array("tampered".utf8).withUnsafeBytes { pair.client.write($0) } == nil)
        var ciphertext: [UInt8] = []
        pair.client.takeCiphertext { ciphertext += $0 }
        ciphertext[ciphertext.count - 1] ^= 0x01   // the AEAD tag
        ciphertext.withUnsafeBytes { pair.server.feed($0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        guard case .failed = pair.server.read(into: buffer) else {
            Issue.record("a record with a bad tag was not a failure")
            return
        }
        guard case .failed = pair.server.read(into: buffer) else {
            Issue.record("the read after a failure did not fail")
            return
        }
    }
}
