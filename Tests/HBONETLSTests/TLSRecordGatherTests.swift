import Testing
@testable import HBONETLS

@Suite struct TLSRecordGatherTests {
    /// Plaintext lengths of the TLS 1.3 records in `ciphertext` (each record: 5-byte header, then the
    /// plaintext, one content-type byte and a 16-byte tag).
    static func recordLengths(_ ciphertext: [UInt8]) -> [Int] {
        var lengths: [Int] = []
        var offset = 0
        while offset + 5 <= ciphertext.count {
            let length = Int(ciphertext[offset + 3]) << 8 | Int(ciphertext[offset + 4])
            lengths.append(length - 17)
            offset += 5 + length
        }
        return lengths
    }

    struct ProducerFailed: Error {}

    /// Gathers `pieces` through the client (then throws, if `failing`); returns the record lengths
    /// on the wire and what the server read.
    static func send(_ pieces: [[UInt8]], failing: Bool = false) throws -> (records: [Int], received: [UInt8]) {
        let pair = try makePair()
        _ = pair.run()
        let scratch = TLSScratch()
        do {
            let failure = try TLSRecordGather.write(to: pair.client, scratch: scratch) { append in
                for piece in pieces { piece.withUnsafeBytes { append($0) } }
                if failing { throw ProducerFailed() }
            }
            #expect(failure == nil)
            #expect(!failing)
        } catch {
            #expect(failing && error is ProducerFailed)
        }
        var ciphertext: [UInt8] = []
        pair.client.takeCiphertext { ciphertext = Array($0) }
        ciphertext.withUnsafeBytes { pair.server.feed($0) }
        let buffer = scratch.plaintext
        var received: [UInt8] = []
        while case let .bytes(n) = pair.server.read(into: buffer) { received += buffer[0..<n] }
        return (recordLengths(ciphertext), received)
    }

    static func piece(_ count: Int, _ seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0) &+ seed } }

    @Test func smallFramesGoOutAsOneRecord() throws {
        // A CONNECT's HEADERS, a 1-byte DATA, an empty END_STREAM DATA, a WINDOW_UPDATE.
        let pieces = [Self.piece(61, 1), Self.piece(10, 2), Self.piece(9, 3), Self.piece(13, 4)]
        let (records, received) = try Self.send(pieces)
        #expect(records == [93])
        #expect(received == pieces.flatMap { $0 })
    }

    @Test func aPieceThatDoesNotFitStartsTheNextRecord() throws {
        let pieces = [Self.piece(10_000, 1), Self.piece(10_000, 2), Self.piece(6_000, 3)]
        let (records, received) = try Self.send(pieces)
        #expect(records == [10_000, 16_000])
        #expect(received == pieces.flatMap { $0 })
    }

    @Test func wholeRecordsPassStraightThroughInOrder() throws {
        // Bulk DATA (a full 16,384-byte frame) after a WINDOW_UPDATE, and a piece larger than a record.
        let pieces = [Self.piece(13, 1), Self.piece(16_384, 2), Self.piece(40_000, 3), Self.piece(9, 4)]
        let (records, received) = try Self.send(pieces)
        #expect(records == [13, 16_384, 16_384, 16_384, 7_232, 9])
        #expect(received == pieces.flatMap { $0 })
    }

    /// A producer that fails after handing pieces over (nghttp2 after some frames): those frames
    /// still go out, and the producer's error reaches the caller.
    @Test func whatWasHandedOverIsWrittenWhenTheProducerFails() throws {
        let pieces = [Self.piece(61, 1), Self.piece(17, 2)]
        let (records, received) = try Self.send(pieces, failing: true)
        #expect(records == [78])
        #expect(received == pieces.flatMap { $0 })
    }

    @Test func nothingGatheredWritesNothing() throws {
        let (records, received) = try Self.send([[], []])
        #expect(records.isEmpty)
        #expect(received.isEmpty)
    }
}
