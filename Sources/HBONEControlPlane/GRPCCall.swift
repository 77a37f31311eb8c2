import HBONEGRPC
import HBONEH2

/// One gRPC call on a `GRPCChannel`: messages out with `send`, messages in through `onMessage`,
/// and exactly one `onEnd` with the outcome. Confined to the channel's loop.
public final class GRPCCall {
    public enum Outcome: Sendable, CustomStringConvertible {
        /// The call finished with this status (OK included).
        case status(GRPCStatus)
        /// The channel never came up: no request reached the server.
        case connectionFailed(String)

        /// How the reconnect policy sees it.
        public var ending: ReconnectBackoff.Ending {
            switch self {
            case let .status(s): s.code == .ok ? .clean : .status(s)
            case .connectionFailed: .connectionFailed
            }
        }

        public var description: String {
            switch self {
            case let .status(s): s.description
            case let .connectionFailed(reason): "connection failed: \(reason)"
            }
        }
    }

    private(set) weak var channel: GRPCChannel?
    let headers: [H2Header]
    var reader: GRPCMessageReader
    var onMessage: ([UInt8]) -> Void
    var onEnd: (Outcome) -> Void
    var stream: Int32?
    var httpStatus: Int?
    var trailers: [(String, String)]?
    var queued: [[UInt8]] = []
    var finishRequested = false
    public internal(set) var ended = false

    init(channel: GRPCChannel, headers: [H2Header], maxMessageBytes: Int,
         onMessage: @escaping ([UInt8]) -> Void, onEnd: @escaping (Outcome) -> Void) {
        self.channel = channel
        self.headers = headers
        self.reader = GRPCMessageReader(maxMessageBytes: maxMessageBytes)
        self.onMessage = onMessage
        self.onEnd = onEnd
    }

    /// Sends one serialized message (framed here).
    public func send(_ message: [UInt8]) {
        guard !ended else { return }
        channel?.send(self, GRPCMessageReader.frame(message))
    }

    /// Half-closes the request side (a unary call after its one message).
    public func finishSending() {
        guard !ended else { return }
        channel?.finish(self)
    }

    /// Resets the stream; `onEnd` reports CANCELLED with `reason`.
    public func cancel(_ reason: String) {
        guard !ended else { return }
        channel?.cancel(self, reason: reason)
    }

    /// Drops the callbacks once ended, so owners referenced by them are not kept alive.
    func release() {
        onMessage = { _ in }
        onEnd = { _ in }
    }
}
