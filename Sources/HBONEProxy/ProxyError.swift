/// Why a tunnel or an HBONE connection failed: which side failed, a stable code from a closed set,
/// and a human reason. The access log, `response_flags`, the SOCKS5 reply and the failure counters
/// all derive from the side and the code, never from the text. Equality is on side and code.
public struct ProxyError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Where the failure was: the peer that opened the connection to us (`downstream`), the one we
    /// connected to (`upstream`), or this proxy itself (`internal`: config, a limit, a shutdown).
    public enum Side: String, Sendable {
        case downstream, upstream, `internal`
    }

    public enum Code: String, Sendable {
        /// A TCP connect failed or timed out (`errno` says which), or a CONNECT went unanswered.
        case connect
        /// The destination proxy answered the CONNECT with an error status (400, 503, …).
        case rejected
        /// An authorization policy denied it (here, or the destination proxy's 401).
        case denied
        /// A malformed CONNECT request.
        case badRequest = "bad_request"
        /// The CONNECT named an address that is not a workload this proxy serves.
        case unknownDestination = "unknown_destination"
        /// A workload known by its hostname gave no address to connect to (ztunnel's on-demand
        /// DNS): the name has none, or the upstream resolver did not answer.
        case dnsLookup = "dns_lookup"
        /// TLS failed: handshake, verification, or the record layer.
        case tls
        /// HTTP/2 failed: preface, a protocol error, an unanswered PING.
        case http2
        /// The connection or stream broke or ended early: RST, EOF, a socket error, a reset stream.
        case connectionLost = "connection_lost"
        /// No bytes either way for longer than the idle timeout.
        case idle
        /// Closed by this proxy: the drain deadline, a policy change, a root removed from the bundle.
        case closed
        /// A configuration that cannot be used.
        case config
        /// The peer's certificate (or one above it) is on a revocation list that arrived after the
        /// connection was made.
        case revoked
    }

    public let side: Side
    public let code: Code
    /// For people: the access log's `error` field and log lines.
    public let reason: String
    /// The socket error behind it, when there is one (it picks the SOCKS5 reply).
    public let errno: Int32?

    public init(_ side: Side, _ code: Code, _ reason: String, errno: Int32? = nil) {
        self.side = side
        self.code = code
        self.reason = reason
        self.errno = errno
    }

    public var description: String { reason }

    public static func == (a: ProxyError, b: ProxyError) -> Bool { a.side == b.side && a.code == b.code }

    /// Istio's `response_flags` (hbone-reference §5).
    var responseFlags: String {
        switch code {
        case .denied: return "DENY"
        case .tls: return "TLS_FAILURE"
        case .http2: return "H2_HANDSHAKE_FAILURE"
        case .connect, .rejected, .unknownDestination, .dnsLookup: return "CONNECT"
        case .revoked: return "CERT_REVOKED"
        case .badRequest, .connectionLost, .idle, .closed, .config: return "-"
        }
    }
}
