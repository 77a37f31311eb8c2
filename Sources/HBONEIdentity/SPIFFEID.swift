/// A workload identity of the shape `spiffe://TD/ns/NS/sa/SA`, parsed by the SPIFFE spec's rules
/// narrowed to Istio's layout (hbone-reference §2). Knows nothing of X.509 or TLS.
public struct SPIFFEID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The four strings live in one box: a tunnel copies its peers' IDs half a dozen times (into
    /// its facts, its metric labels, its pool key), and a copy of the box is one retain where a
    /// copy of four strings was four (scripts/bench-tunnel-cost.sh).
    @usableFromInline final class Storage: Sendable {
        @usableFromInline let trustDomain: String
        @usableFromInline let namespace: String
        @usableFromInline let serviceAccount: String
        /// `spiffe://TD/ns/NS/sa/SA`, written once: each tunnel reads it twice for its metric
        /// series and once for its policy check, and writing it each time was 2–3 allocations and
        /// ~4,600 instructions per tunnel. It alone decides equality and the hash: segments hold
        /// no `/`, so it and the three parts determine each other.
        @usableFromInline let uri: String
        /// `uri`'s hash under this process's seed, taken once: a tunnel looks identities up four
        /// times (its certificate, its client context, its pool key's two), and hashing the
        /// ~50-byte URI each time was ~1,000 instructions per tunnel.
        @usableFromInline let uriHash: Int

        init(_ trustDomain: String, _ namespace: String, _ serviceAccount: String, uri: String) {
            self.trustDomain = trustDomain
            self.namespace = namespace
            self.serviceAccount = serviceAccount
            self.uri = uri
            self.uriHash = uri.hashValue
        }
    }

    @usableFromInline let storage: Storage

    @inlinable public var trustDomain: String { storage.trustDomain }
    @inlinable public var namespace: String { storage.namespace }
    @inlinable public var serviceAccount: String { storage.serviceAccount }
    @inlinable public var uri: String { storage.uri }

    /// The SPIFFE spec's maximum URI length.
    public static let maxLength = 2048

    public init(trustDomain: String, namespace: String, serviceAccount: String) throws(SPIFFEIDError) {
        try SPIFFEID.checkTrustDomain(trustDomain)
        try SPIFFEID.checkSegment(namespace)
        try SPIFFEID.checkSegment(serviceAccount)
        storage = Storage(trustDomain, namespace, serviceAccount, uri: SPIFFEID.written(trustDomain, namespace, serviceAccount))
    }

    /// Parses `spiffe://TD/ns/NS/sa/SA`. One pass over the UTF-8 bytes: this runs on every
    /// handshake, and character-level String operations made it 25× slower.
    public init(parsing text: String) throws(SPIFFEIDError) {
        var text = text
        // withUTF8 rethrows untyped errors: carry the typed one out in a Result.
        let parts = try text.withUTF8 { bytes in Result { () throws(SPIFFEIDError) in try SPIFFEID.parse(bytes) } }.get()
        // Accepted text is already the one form the parts write (scheme and trust domain in
        // lowercase, exactly four segments, nothing after them).
        storage = Storage(parts.0, parts.1, parts.2, uri: text)
    }

    /// The checks of `init(parsing:)`, in the order that decides which error a bad ID reports.
    private static func parse(_ b: UnsafeBufferPointer<UInt8>) throws(SPIFFEIDError) -> (String, String, String) {
        if b.count > maxLength { throw .tooLong }
        let scheme: StaticString = "spiffe://"
        let n = scheme.utf8CodeUnitCount
        var exact = b.count >= n, folded = b.count >= n
        for i in 0..<min(n, b.count) {
            let want = scheme.utf8Start[i], got = b[i]
            if got != want { exact = false }
            let lower = got >= UInt8(ascii: "A") && got <= UInt8(ascii: "Z") ? got | 0x20 : got
            if lower != want { folded = false }
        }
        guard exact else { throw folded ? .schemeNotLowercase : .notSPIFFE }
        var slash: Int?
        for i in n..<b.count {
            switch b[i] {
            case UInt8(ascii: "?"): throw .hasQuery
            case UInt8(ascii: "/"): if slash == nil { slash = i }
            default: continue
            }
        }
        for i in n..<b.count where b[i] == UInt8(ascii: "#") { throw .hasFragment }
        for i in n..<b.count where b[i] == UInt8(ascii: "%") { throw .percentEncoded }
        guard let slash else { throw b.count == n ? .emptyTrustDomain : .notIstioShape }
        let authority = UnsafeBufferPointer(rebasing: b[n..<slash])
        if authority.contains(UInt8(ascii: "@")) { throw .hasUserInfo }
        if authority.contains(UInt8(ascii: ":")) { throw .hasPort }
        try checkTrustDomain(authority)
        if b[b.count - 1] == UInt8(ascii: "/") { throw .trailingSlash }
        // Path segments after the first slash; the Istio shape has exactly four.
        var segments = (0..<0, 0..<0, 0..<0, 0..<0)
        var start = slash + 1
        var count = 0
        for i in (slash + 1)...b.count where i == b.count || b[i] == UInt8(ascii: "/") {
            try checkSegment(UnsafeBufferPointer(rebasing: b[start..<i]))
            switch count {
            case 0: segments.0 = start..<i
            case 1: segments.1 = start..<i
            case 2: segments.2 = start..<i
            case 3: segments.3 = start..<i
            default: break
            }
            count += 1
            start = i + 1
        }
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self) }
        func equals(_ r: Range<Int>, _ a: UInt8, _ c: UInt8) -> Bool { r.count == 2 && b[r.lowerBound] == a && b[r.lowerBound + 1] == c }
        guard count == 4, equals(segments.0, UInt8(ascii: "n"), UInt8(ascii: "s")), equals(segments.2, UInt8(ascii: "s"), UInt8(ascii: "a")) else {
            throw .notIstioShape
        }
        return (text(n..<slash), text(segments.1), text(segments.3))
    }

    public var description: String { uri }

    /// The form Istio's AuthorizationPolicy `principals` use: the ID without `spiffe://`.
    public var principal: String { String(uri.dropFirst(SPIFFEID.schemeLength)) }

    /// The principal's UTF-8 bytes, read in place (policy checks match on bytes).
    public func withPrincipalBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = uri.utf8.withContiguousStorageIfAvailable({ body(UnsafeBufferPointer(rebasing: $0[SPIFFEID.schemeLength...])) }) { return r }
        return Array(uri.utf8.dropFirst(SPIFFEID.schemeLength)).withUnsafeBufferPointer(body)
    }

    static let schemeLength = 9    // "spiffe://"

    /// Written into storage sized up front: interpolation grew the string three times.
    private static func written(_ trustDomain: String, _ namespace: String, _ serviceAccount: String) -> String {
        var text = ""
        text.reserveCapacity(schemeLength + trustDomain.utf8.count + 4 + namespace.utf8.count + 4 + serviceAccount.utf8.count)
        text += "spiffe://"
        text += trustDomain
        text += "/ns/"
        text += namespace
        text += "/sa/"
        text += serviceAccount
        return text
    }

    public static func == (a: SPIFFEID, b: SPIFFEID) -> Bool { a.storage === b.storage || a.uri == b.uri }
    public func hash(into hasher: inout Hasher) { hasher.combine(storage.uriHash) }

    public static func < (a: SPIFFEID, b: SPIFFEID) -> Bool { a.uri < b.uri }

    /// Trust domain: lowercase letters, digits, `.`, `-`, `_` (SPIFFE-ID spec §2.1).
    static func checkTrustDomain(_ td: String) throws(SPIFFEIDError) {
        var td = td
        try td.withUTF8 { bytes in Result { () throws(SPIFFEIDError) in try checkTrustDomain(bytes) } }.get()
    }

    static func checkTrustDomain(_ td: UnsafeBufferPointer<UInt8>) throws(SPIFFEIDError) {
        if td.isEmpty { throw .emptyTrustDomain }
        if td.count > 255 { throw .tooLong }
        for c in td {
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
    static func checkSegment(_ segment: String) throws(SPIFFEIDError) {
        var segment = segment
        try segment.withUTF8 { bytes in Result { () throws(SPIFFEIDError) in try checkSegment(bytes) } }.get()
    }

    static func checkSegment(_ segment: UnsafeBufferPointer<UInt8>) throws(SPIFFEIDError) {
        if segment.isEmpty { throw .emptySegment }
        if segment.allSatisfy({ $0 == UInt8(ascii: ".") }) && segment.count <= 2 { throw .dotSegment }
        for c in segment {
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
