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

/// One entry of OpenSSL's error queue: the library and reason codes (what decisions use) and
/// OpenSSL's text (what people read).
struct OpenSSLErrorEntry: Sendable {
    let library: Int32
    let reason: Int32
    let text: String

    /// `reason` in OpenSSL's SSL library.
    func isSSL(_ r: Int32) -> Bool { library == ERR_LIB_SSL && reason == r }
    /// The peer sent a TLS alert (SSL reasons from SSL_AD_REASON_OFFSET are alerts received).
    var isPeerAlert: Bool { library == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256 }
}

/// OpenSSL's error queue is per thread: clear before a call whose failure we interpret, drain after.
enum OpenSSLErrors {
    /// The queue is nearly always empty already (every failure drains it), and `ERR_clear_error`
    /// resets all 16 slots whatever they hold, freeing two pointers in each: 32 `OPENSSL_free`
    /// calls and about 1,000 instructions, three times per echoed byte through a proxy (before
    /// each `SSL_read` and `SSL_write`). A peek says whether there is anything to clear.
    static func clear() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    static func drain() -> [String] { drainEntries().map(\.text) }

    static func drainEntries() -> [OpenSSLErrorEntry] {
        var out: [OpenSSLErrorEntry] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            out.append(OpenSSLErrorEntry(library: ERR_GET_LIB(code), reason: ERR_GET_REASON(code),
                                         text: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
            if out.count > 16 { ERR_clear_error(); break }
        }
        return out
    }
}
