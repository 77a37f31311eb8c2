import HBONECore
import HBONEIdentity

/// Why a peer certificate was refused. `code` is the `reason` label of the handshake-failure metric.
public enum PeerRejection: Error, Hashable, Sendable, CustomStringConvertible {
    case chain(code: String, detail: String)      // OpenSSL chain validation (expired, unknown issuer, ...)
    case noCertificate
    case noSAN
    case noURISAN
    case multipleURISANs(Int)
    case badSPIFFEID(SPIFFEIDError, String)
    case leafIsCA
    case missingDigitalSignature
    case missingClientAuth
    case missingServerAuth
    case untrustedTrustDomain(String)
    case unexpectedIdentity(got: SPIFFEID, expected: [SPIFFEID])
    case noALPN

    public var code: String {
        switch self {
        case let .chain(code, _): return code
        case .noCertificate: return "no_certificate"
        case .noSAN: return "no_san"
        case .noURISAN: return "no_uri_san"
        case .multipleURISANs: return "multiple_uri_sans"
        case let .badSPIFFEID(e, _): return "bad_spiffe_id_" + e.code
        case .leafIsCA: return "leaf_is_ca"
        case .missingDigitalSignature: return "missing_digital_signature"
        case .missingClientAuth: return "missing_client_auth"
        case .missingServerAuth: return "missing_server_auth"
        case .untrustedTrustDomain: return "untrusted_trust_domain"
        case .unexpectedIdentity: return "unexpected_identity"
        case .noALPN: return "no_alpn_h2"
        }
    }

    public var description: String {
        switch self {
        case let .chain(_, detail): return "certificate chain rejected: \(detail)"
        case .noCertificate: return "peer sent no certificate"
        case .noSAN: return "leaf has no subjectAltName"
        case .noURISAN: return "leaf has no URI subjectAltName (DNS or other names only)"
        case let .multipleURISANs(n): return "leaf has \(n) URI subjectAltNames, exactly one is allowed"
        case let .badSPIFFEID(e, uri): return "leaf URI SAN \(Log.jsonString(String(uri.prefix(120)))) is not a valid SPIFFE ID: \(e)"
        case .leafIsCA: return "leaf is a CA certificate (CA:true)"
        case .missingDigitalSignature: return "leaf key usage lacks digitalSignature"
        case .missingClientAuth: return "leaf extended key usage lacks clientAuth"
        case .missingServerAuth: return "leaf extended key usage lacks serverAuth"
        case let .untrustedTrustDomain(td): return "trust domain \(td) is not trusted here"
        case let .unexpectedIdentity(got, expected):
            return "server presented \(got), expected one of \(expected.map(\.description).joined(separator: ", "))"
        case .noALPN: return "peer did not negotiate ALPN h2"
        }
    }
}
