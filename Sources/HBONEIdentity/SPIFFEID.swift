/// A workload identity of the shape `spiffe://TD/ns/NS/sa/SA`, parsed by the SPIFFE spec's rules
/// narrowed to Istio's layout (hbone-reference §2). Knows nothing of X.509 or TLS.
public struct SPIFFEID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let trustDomain: String
    public let namespace: String
    public let serviceAccount: String

    /// The SPIFFE spec's maximum URI length.
    public static let maxLength = 2048

    public init(trustDomain: String, namespace: String, serviceAccount: String) throws(SPIFFEIDError) {
        try SPIFFEID.checkTrustDomain(trustDomain)
        try SPIFFEID.checkSegment(namespace)
        try SPIFFEID.checkSegment(serviceAccount)
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// Parses `spiffe://TD/ns/NS/sa/SA`.
    public init(parsing text: String) throws(SPIFFEIDError) {
        let utf8 = text.utf8
        if utf8.count > SPIFFEID.maxLength { throw .tooLong }
        let scheme = "spiffe://"
        guard text.hasPrefix(scheme) else {
            if text.lowercased().hasPrefix(scheme) { throw .schemeNotLowercase }
            throw .notSPIFFE
        }
        let rest = text.dropFirst(scheme.count)
        if rest.contains("?") { throw .hasQuery }
        if rest.contains("#") { throw .hasFragment }
        if rest.contains("%") { throw .percentEncoded }
        guard let slash = rest.firstIndex(of: "/") else {
            if rest.isEmpty { throw .emptyTrustDomain }
            throw .notIstioShape
        }
        let authority = String(rest[..<slash])
        if authority.contains("@") { throw .hasUserInfo }
        if authority.contains(":") { throw .hasPort }
        try SPIFFEID.checkTrustDomain(authority)
        let path = rest[rest.index(after: slash)...]
        if path.hasSuffix("/") { throw .trailingSlash }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for segment in segments { try SPIFFEID.checkSegment(segment) }
        guard segments.count == 4, segments[0] == "ns", segments[2] == "sa" else { throw .notIstioShape }
        self.trustDomain = authority
        self.namespace = String(segments[1])
        self.serviceAccount = String(segments[3])
    }

    /// `spiffe://TD/ns/NS/sa/SA`
    public var description: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }

    /// The form Istio's AuthorizationPolicy `principals` use: the ID without `spiffe://`.
    public var principal: String { "\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }

    public static func < (a: SPIFFEID, b: SPIFFEID) -> Bool { a.description < b.description }

    /// Trust domain: lowercase letters, digits, `.`, `-`, `_` (SPIFFE-ID spec §2.1).
    static func checkTrustDomain(_ td: some StringProtocol) throws(SPIFFEIDError) {
        if td.isEmpty { throw .emptyTrustDomain }
        if td.utf8.count > 255 { throw .tooLong }
        for c in td.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                throw .trustDomainNotLowercase
            default:
                throw .badTrustDomainCharacter
            }
        }
    }

    /// Path segment: letters, digits, `.`, `-`, `_`; not empty, not `.` or `..` (SPIFFE-ID spec §2.2).
    static func checkSegment(_ segment: some StringProtocol) throws(SPIFFEIDError) {
        if segment.isEmpty { throw .emptySegment }
        if segment == "." || segment == ".." { throw .dotSegment }
        for c in segment.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            default:
                throw .badPathCharacter
            }
        }
    }
}

/// Why a string is not an acceptable SPIFFE ID. `code` is stable and used as a metric label.
public enum SPIFFEIDError: Error, Hashable, Sendable, CustomStringConvertible {
    case notSPIFFE, schemeNotLowercase, tooLong, emptyTrustDomain, trustDomainNotLowercase
    case badTrustDomainCharacter, hasPort, hasUserInfo, hasQuery, hasFragment, percentEncoded
    case emptySegment, dotSegment, badPathCharacter, trailingSlash, notIstioShape

    public var code: String {
        switch self {
        case .notSPIFFE: return "not_spiffe"
        case .schemeNotLowercase: return "scheme_not_lowercase"
        case .tooLong: return "too_long"
        case .emptyTrustDomain: return "empty_trust_domain"
        case .trustDomainNotLowercase: return "trust_domain_not_lowercase"
        case .badTrustDomainCharacter: return "bad_trust_domain_character"
        case .hasPort: return "has_port"
        case .hasUserInfo: return "has_user_info"
        case .hasQuery: return "has_query"
        case .hasFragment: return "has_fragment"
        case .percentEncoded: return "percent_encoded"
        case .emptySegment: return "empty_segment"
        case .dotSegment: return "dot_segment"
        case .badPathCharacter: return "bad_path_character"
        case .trailingSlash: return "trailing_slash"
        case .notIstioShape: return "not_ns_sa_shape"
        }
    }

    public var description: String {
        switch self {
        case .notSPIFFE: return "not a spiffe:// URI"
        case .schemeNotLowercase: return "scheme must be lowercase spiffe://"
        case .tooLong: return "longer than 2048 bytes"
        case .emptyTrustDomain: return "empty trust domain"
        case .trustDomainNotLowercase: return "trust domain must be lowercase"
        case .badTrustDomainCharacter: return "trust domain may hold only a-z 0-9 . - _"
        case .hasPort: return "trust domain must not carry a port"
        case .hasUserInfo: return "must not carry user info"
        case .hasQuery: return "must not carry a query"
        case .hasFragment: return "must not carry a fragment"
        case .percentEncoded: return "must not be percent-encoded"
        case .emptySegment: return "empty path segment"
        case .dotSegment: return "path segment . or .."
        case .badPathCharacter: return "path may hold only letters, digits . - _"
        case .trailingSlash: return "trailing slash"
        case .notIstioShape: return "path is not /ns/<namespace>/sa/<service-account>"
        }
    }
}
