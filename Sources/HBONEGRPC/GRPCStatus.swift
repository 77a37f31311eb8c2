/// How a gRPC call ended: the code from `grpc-status` and the percent-decoded `grpc-message`
/// (gRPC over HTTP/2, "Responses"). A response without `grpc-status` (an intermediary answered, or the
/// stream broke) gets its code from the HTTP status, as gRPC's HTTP-to-gRPC mapping says.
public struct GRPCStatus: Equatable, Sendable, CustomStringConvertible {
    public enum Code: Int, Sendable, CaseIterable {
        case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists, permissionDenied,
             resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented, `internal`, unavailable, dataLoss,
             unauthenticated

        /// The canonical upper-case name (`UNAVAILABLE`), as logs and istiod print it.
        public var name: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "CANCELLED"
            case .unknown: "UNKNOWN"
            case .invalidArgument: "INVALID_ARGUMENT"
            case .deadlineExceeded: "DEADLINE_EXCEEDED"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .permissionDenied: "PERMISSION_DENIED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .aborted: "ABORTED"
            case .outOfRange: "OUT_OF_RANGE"
            case .unimplemented: "UNIMPLEMENTED"
            case .internal: "INTERNAL"
            case .unavailable: "UNAVAILABLE"
            case .dataLoss: "DATA_LOSS"
            case .unauthenticated: "UNAUTHENTICATED"
            }
        }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public var description: String { message.isEmpty ? code.name : "\(code.name): \(message)" }

    /// The status of a finished call, from its trailers (or, for a trailers-only answer, its headers).
    /// `httpStatus`: the response's `:status`, for the answers that carry no `grpc-status`.
    public init(trailers: [(name: String, value: String)], httpStatus: Int?) {
        let status = trailers.first { $0.name == "grpc-status" }?.value
        let message = trailers.first { $0.name == "grpc-message" }.map { GRPCStatus.percentDecoded($0.value) } ?? ""
        guard let status else {
            self.init(GRPCStatus.code(forHTTPStatus: httpStatus), message.isEmpty ? "no grpc-status (HTTP \(httpStatus.map(String.init) ?? "none"))" : message)
            return
        }
        // A value that is not a known code is UNKNOWN, keeping what the peer said.
        guard let raw = Int(status), let code = Code(rawValue: raw) else {
            self.init(.unknown, "grpc-status \(status.prefix(16))" + (message.isEmpty ? "" : ": \(message)"))
            return
        }
        self.init(code, message)
    }

    /// gRPC's table for responses without `grpc-status`: intermediaries' statuses mean something.
    public static func code(forHTTPStatus status: Int?) -> Code {
        switch status {
        case 400?: .internal
        case 401?: .unauthenticated
        case 403?: .permissionDenied
        case 404?: .unimplemented
        case 429?, 502?, 503?, 504?: .unavailable
        default: .unknown
        }
    }

    /// `grpc-message` is percent-encoded UTF-8; a malformed escape is kept as written, never fatal.
    public static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var utf8 = Array(text.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%"), utf8.count >= 2, let hi = hex(utf8[utf8.startIndex]), let lo = hex(utf8[utf8.startIndex + 1]) {
                bytes.append(hi << 4 | lo)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
