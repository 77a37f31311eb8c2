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

/// RST_STREAM / GOAWAY error codes we use.
public enum H2ErrorCode {
    public static let noError: UInt32 = 0
    public static let protocolError: UInt32 = 1
    public static let internalError: UInt32 = 2
    public static let refusedStream: UInt32 = 7
    public static let cancel: UInt32 = 8
    public static let connectError: UInt32 = 10
}
