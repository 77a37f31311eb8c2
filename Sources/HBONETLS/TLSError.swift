import COpenSSL

/// A TLS failure with a stable code (metric label) and a human reason. Equality is on the code.
public struct TLSError: Error, CustomStringConvertible, Sendable, Hashable {
    public let code: String
    public let reason: String

    public init(code: String, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
    public static func == (a: TLSError, b: TLSError) -> Bool { a.code == b.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// Builds an error from, and empties, this thread's OpenSSL error queue (every entry is kept).
    static func fromQueue(code: String, _ context: String) -> TLSError {
        let entries = OpenSSLErrors.drain()
        return TLSError(code: code, reason: entries.isEmpty ? context : "\(context): \(entries.joined(separator: "; "))")
    }
}

/// OpenSSL's error queue is per thread: clear before a call whose failure we interpret, drain after.
enum OpenSSLErrors {
    static func clear() { ERR_clear_error() }

    static func drain() -> [String] {
        var out: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            out.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            if out.count > 16 { ERR_clear_error(); break }
        }
        return out
    }
}
