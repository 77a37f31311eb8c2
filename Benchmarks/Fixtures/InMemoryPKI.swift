import HBONEIdentity
import HBONETLS

/// A root, one intermediate and two SVIDs made in process (no files), shaped like `hbone ca` output:
/// enough for TLS engines to handshake in memory.
public struct InMemoryPKI: Sendable {
    public let trust: TrustBundle
    public let client: CertifiedKey
    public let server: CertifiedKey

    public static let clientID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
    public static let serverID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

    public init() throws {
        let rootKey = try CertificateAuthority.generateKey(.ecP256)
        let root = try CertificateAuthority.sign(
            subject: .init(organization: "hbone-bench", commonName: "root"), publicKeyOf: rootKey, issuer: nil, signer: rootKey,
            validity: 86400, extensions: CertificateAuthority.rootExtensions)
        let intermediateKey = try CertificateAuthority.generateKey(.ecP256)
        let intermediate = try CertificateAuthority.sign(
            subject: .init(organization: "hbone-bench", commonName: "intermediate"), publicKeyOf: intermediateKey, issuer: root, signer: rootKey,
            validity: 86400, extensions: CertificateAuthority.intermediateExtensions)
        func svid(_ id: SPIFFEID) throws -> CertifiedKey {
            let (cert, key) = try CertificateAuthority.issueSVID(id, ca: intermediate, caKey: intermediateKey, lifetime: .seconds(86400))
            return try CertifiedKey(chain: [cert, intermediate], key: key)
        }
        trust = try TrustBundle(roots: [root])
        client = try svid(Self.clientID)
        server = try svid(Self.serverID)
    }
}
