/// Reads gRPC's length-prefixed messages (1-byte compressed flag, 4-byte big-endian length, the
/// message) from a stream's DATA, however the bytes are split. It never holds more than one message
/// of at most `maxMessageBytes` plus its prefix: a peer cannot make it buffer without bound.
///
/// Compressed messages are refused: we send no `grpc-accept-encoding`, so a compressed one is the
/// peer's error, not something to inflate.
public struct GRPCMessageReader: Sendable {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case compressed
        case badFlag(UInt8)
        case tooLarge(length: Int, limit: Int)

        public var description: String {
            switch self {
            case .compressed: "compressed message (no grpc-encoding was negotiated)"
            case let .badFlag(flag): "bad message flag \(flag)"
            case let .tooLarge(length, limit): "message of \(length) bytes exceeds the \(limit)-byte limit"
            }
        }
    }

    /// The largest message accepted. ztunnel's xDS client allows 200 MiB.
    public let maxMessageBytes: Int
    public static let defaultMaxMessageBytes = 200 * 1024 * 1024

    private var header: [UInt8] = []
    private var message: [UInt8] = []
    private var expected = -1
    private(set) var failed: Failure?

    public init(maxMessageBytes: Int = GRPCMessageReader.defaultMaxMessageBytes) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Bytes of the message being assembled (for tests and memory accounting).
    public var buffered: Int { header.count + message.count }

    /// Feeds bytes; returns every message they complete. After a failure, the stream is unusable:
    /// the same failure is returned for every later call.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(Failure) -> [[UInt8]] {
        if let failed { throw failed }
        var out: [[UInt8]] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            if expected < 0 {
                let take = min(5 - header.count, rest.count)
                header.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                guard header.count == 5 else { break }
                let length = Int(header[1]) << 24 | Int(header[2]) << 16 | Int(header[3]) << 8 | Int(header[4])
                let failure: Failure? = switch header[0] {
                case 0: length > maxMessageBytes ? .tooLarge(length: length, limit: maxMessageBytes) : nil
                case 1: .compressed
                default: .badFlag(header[0])
                }
                if let failure {
                    failed = failure
                    header = []
                    throw failure
                }
                expected = length
                message.reserveCapacity(min(length, 64 * 1024))
            }
            let take = min(expected - message.count, rest.count)
            message.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            if message.count == expected {
                out.append(message)
                message = []
                header.removeAll(keepingCapacity: true)
                expected = -1
            }
        }
        return out
    }

    /// Whether the stream ended between messages (an end inside one means the peer cut it short).
    public var isAtMessageBoundary: Bool { expected < 0 && header.isEmpty }

    /// One message framed for the wire (uncompressed).
    public static func frame(_ message: some Collection<UInt8>) -> [UInt8] {
        let n = message.count
        var out: [UInt8] = [0, UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                            UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
        out.append(contentsOf: message)
        return out
    }
}
