import CNghttp2

/// A connection-level HTTP/2 failure with a stable code.
public struct H2Error: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let reason: String

    init(_ code: Int32, _ context: String) {
        self.code = code
        self.reason = "\(context): \(String(cString: nghttp2_strerror(code)))"
    }

    public var description: String { reason }
}

/// RST_STREAM / GOAWAY error codes we send or classify (RFC 9113 §7).
public enum H2ErrorCode {
    public static let noError: UInt32 = 0
    public static let protocolError: UInt32 = 1
    public static let internalError: UInt32 = 2
    public static let flowControlError: UInt32 = 3
    public static let streamClosed: UInt32 = 5
    public static let frameSizeError: UInt32 = 6
    public static let refusedStream: UInt32 = 7
    public static let cancel: UInt32 = 8
    public static let compressionError: UInt32 = 9
    public static let connectError: UInt32 = 10
    public static let enhanceYourCalm: UInt32 = 11
}

/// Why the peer's HTTP/2 was refused; the label of `hbone_h2_protocol_errors_total{reason}`.
public enum H2ProtocolError: String, Sendable, CaseIterable {
    /// Too many frames we must answer (PING, SETTINGS, RST) queued, or a header block split into too
    /// many CONTINUATION frames: nghttp2's flood guards.
    case flood
    /// Streams reset by the peer before we answered them, past the per-second bound.
    case rapidReset = "rapid_reset"
    case compression
    case flowControl = "flow_control"
    /// A frame on a stream in the wrong state (closed, idle, half-closed).
    case streamState = "stream_state"
    case frameSize = "frame_size"
    /// Not an HTTP/2 connection preface.
    case badPreface = "bad_preface"
    /// Any other PROTOCOL_ERROR.
    case `protocol`

    /// The reason behind an error code nghttp2 sent.
    public init(code: UInt32) {
        switch code {
        case H2ErrorCode.flowControlError: self = .flowControl
        case H2ErrorCode.streamClosed: self = .streamState
        case H2ErrorCode.frameSizeError: self = .frameSize
        case H2ErrorCode.compressionError: self = .compression
        case H2ErrorCode.enhanceYourCalm: self = .flood
        default: self = .protocol
        }
    }

    /// The reason behind a fatal nghttp2 library error from `receive`.
    public init(libraryError code: Int32) {
        switch code {
        case NGHTTP2_ERR_FLOODED.rawValue, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue: self = .flood
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue: self = .badPreface
        case NGHTTP2_ERR_HEADER_COMP.rawValue: self = .compression
        case NGHTTP2_ERR_FLOW_CONTROL.rawValue: self = .flowControl
        case NGHTTP2_ERR_STREAM_CLOSED.rawValue, NGHTTP2_ERR_STREAM_CLOSING.rawValue, NGHTTP2_ERR_INVALID_STREAM_STATE.rawValue: self = .streamState
        case NGHTTP2_ERR_FRAME_SIZE_ERROR.rawValue: self = .frameSize
        default: self = .protocol
        }
    }
}
