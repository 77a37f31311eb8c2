/// A proxy failure: which side or stage failed (`kind`, it feeds `response_flags` and the SOCKS5
/// reply), a reason for the access log, and the socket error behind it when there is one.
public struct ProxyError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case config, downstream, upstream, tls, h2, denied, badRequest, internalError
    }
    public let kind: Kind
    public let reason: String
    /// The socket error behind it, when there is one (it picks the SOCKS5 reply).
    public let errno: Int32?

    public init(_ kind: Kind, _ reason: String, errno: Int32? = nil) {
        self.kind = kind
        self.reason = reason
        self.errno = errno
    }

    public var description: String { reason }
}
