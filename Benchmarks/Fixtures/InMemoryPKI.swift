import Foundation
import HBONEIdentity
import HBONETLS

/// A root, one intermediate and two SVIDs made in process (no files), shaped like `hbone ca` output:
/// enough for TLS engines to handshake in memory.
public struct InMemoryPKI: Sendable {
    public let trust: TrustBundle
    /// What the server verifies the client's chain with (`trust`, unless revocation lists are given).
    public let serverTrust: TrustBundle
    public let client: CertifiedKey
    public let server: CertifiedKey

    public static let clientID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
    public static let serverID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

    /// A root and one intermediate under it, valid for a day, with the intermediate's key.
    public static func authorities() throws -> (root: Certificate, intermediate: Certificate, intermediateKey: PrivateKey) {
        let rootKey = try CertificateAuthority.generateKey(.ecP256)
        let root = try CertificateAuthority.sign(
            subject: .init(organization: "hbone-bench", commonName: "root"), publicKeyOf: rootKey, issuer: nil, signer: rootKey,
            validity: 86400, extensions: CertificateAuthority.rootExtensions)
        let intermediateKey = try CertificateAuthority.generateKey(.ecP256)
        let intermediate = try CertificateAuthority.sign(
            subject: .init(organization: "hbone-bench", commonName: "intermediate"), publicKeyOf: intermediateKey, issuer: root, signer: rootKey,
            validity: 86400, extensions: CertificateAuthority.intermediateExtensions)
        return (root, intermediate, intermediateKey)
    }

    public init() throws {
        let (root, intermediate, intermediateKey) = try Self.authorities()
        func svid(_ id: SPIFFEID) throws -> CertifiedKey {
            let (cert, key) = try CertificateAuthority.issueSVID(id, ca: intermediate, caKey: intermediateKey, lifetime: .seconds(86400))
            return try CertifiedKey(chain: [cert, intermediate], key: key)
        }
        trust = try TrustBundle(roots: [root])
        serverTrust = trust
        client = try svid(Self.clientID)
        server = try svid(Self.serverID)
    }

    /// The same two identities from the test PKI `scripts/gen-test-pki.sh` wrote in `directory`
    /// (checkout under east's intermediate, ledger under west's); the server checks the client's
    /// chain against `serverRevocationLists` (file names under `crl/`).
    public init(directory: String, serverRevocationLists: [String]?) throws {
        func bytes(_ name: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                throw TLSError(code: "bench", reason: "cannot read \(directory)/\(name)")
            }
            return [UInt8](data)
        }
        let roots = try Certificate.parsePEMChain(bytes("bundle-root.pem"))
        trust = try TrustBundle(roots: roots)
        let lists = try serverRevocationLists.map { names in try names.flatMap { try RevocationList.parse(bytes("crl/" + $0)) } }
        serverTrust = try TrustBundle(roots: roots, revocationLists: lists)
        client = try CertifiedKey(directory: directory + "/certs-east/payments/checkout")
        server = try CertifiedKey(directory: directory + "/certs-west/payments/ledger")
    }
}
