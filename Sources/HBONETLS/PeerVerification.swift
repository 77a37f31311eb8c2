import HBONEIdentity

/// What a handshake demands of the peer's leaf beyond chaining to the bundle (hbone-reference §2).
public struct PeerVerification: Sendable, Hashable {
    public enum Side: Sendable, Hashable {
        /// We are the server: any identity of a trusted trust domain; authorization decides the rest.
        case inbound(trustDomains: Set<String>)
        /// We are the client: the server must be exactly one of these identities.
        case outbound(expected: Set<SPIFFEID>)
        /// We are a diagnosing client (`hbone check`): any valid server SVID of these trust domains (nil:
        /// any, the benchmark's client); the caller judges the identity.
        case inspect(trustDomains: Set<String>?)
        /// We are a control-plane client: istiod's certificate (no SVID) for this DNS name or IP.
        case controlPlane(serverName: String)
    }

    public let side: Side

    var isControlPlane: Bool { if case .controlPlane = side { true } else { false } }

    public init(_ side: Side) { self.side = side }

    public static func inbound(trustDomains: Set<String>) -> PeerVerification { .init(.inbound(trustDomains: trustDomains)) }
    public static func outbound(expected: Set<SPIFFEID>) -> PeerVerification { .init(.outbound(expected: expected)) }

    /// The SVID rules for a leaf that already chains to a trusted root.
    public func check(leaf: Certificate) -> Result<SPIFFEID, PeerRejection> { check(LeafFacts(leaf)) }

    /// The SVID rules on what the leaf says. Pure: facts in, identity or reason out.
    public func check(_ leaf: LeafFacts) -> Result<SPIFFEID, PeerRejection> {
        if leaf.sanCount == 0 { return .failure(.noSAN) }
        if leaf.uris.isEmpty { return .failure(.noURISAN) }
        if leaf.uris.count > 1 { return .failure(.multipleURISANs(leaf.uris.count)) }
        let uri = leaf.uris[0]
        let id: SPIFFEID
        do {
            id = try SPIFFEID(parsing: uri)
        } catch {
            return .failure(.badSPIFFEID(error, uri))
        }
        if leaf.isCA { return .failure(.leafIsCA) }
        if !leaf.allowsDigitalSignature { return .failure(.missingDigitalSignature) }
        switch side {
        case let .inbound(trustDomains):
            if !leaf.allowsClientAuth { return .failure(.missingClientAuth) }
            if !trustDomains.contains(id.trustDomain) { return .failure(.untrustedTrustDomain(id.trustDomain)) }
        case let .outbound(expected):
            if !leaf.allowsServerAuth { return .failure(.missingServerAuth) }
            if !expected.contains(id) { return .failure(.unexpectedIdentity(got: id, expected: expected.sorted())) }
        case let .inspect(trustDomains):
            if !leaf.allowsServerAuth { return .failure(.missingServerAuth) }
            if let trustDomains, !trustDomains.contains(id.trustDomain) { return .failure(.untrustedTrustDomain(id.trustDomain)) }
        case .controlPlane:
            if !leaf.allowsServerAuth { return .failure(.missingServerAuth) }
        }
        return .success(id)
    }
}
