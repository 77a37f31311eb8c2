import Foundation
import HBONEIdentity
import HBONETLS

extension FuzzTargets {
    /// Certificates as a peer presents them in a handshake (DER) and as the Istio CA or a bundle
    /// file hands them over (PEM). DER input: two bytes give the leaf's length, the leaf, then the
    /// certificate that would have issued it. Besides never crashing, what the SVID rules accept
    /// must be what an SVID is: one URI SAN, which is the identity exactly, on a non-CA leaf
    /// allowed to sign.
    static func certificate(_ bytes: UnsafeRawBufferPointer) {
        if bytes.starts(with: "-----BEGIN".utf8) {
            guard let chain = try? Certificate.parsePEMChain(Array(bytes)) else { return }
            chain.forEach(inspect)
            _ = try? TrustBundle(roots: chain)
            _ = try? certificateRequest.accept([text(bytes)], trust: fuzzBundle)
            return
        }
        guard bytes.count >= 2 else { return }
        let split = min(bytes.count - 2, Int(bytes[0]) << 8 | Int(bytes[1]))
        guard let leaf = try? Certificate.parseDER(Array(bytes[2..<(2 + split)])) else { return }
        inspect(leaf)
        guard let issuer = try? Certificate.parseDER(Array(bytes[(2 + split)...])) else { return }
        inspect(issuer)
        _ = leaf.isSigned(by: issuer)
        if let bundle = try? TrustBundle(roots: [issuer]) { _ = bundle.verify(chain: [leaf]) }
        _ = fuzzBundle.verify(chain: [leaf, issuer])
    }

    /// A revocation list file (CRL_PATH: PEM or DER). What parses writes back to the same DER,
    /// loads into a bundle, and is looked up when a chain under that bundle is checked.
    static func revocationList(_ bytes: UnsafeRawBufferPointer) {
        guard let lists = try? RevocationList.parse(Array(bytes)) else { return }
        for list in lists {
            _ = (list.issuer, list.revokedCount, list.nextUpdate)
            let der = list.der
            precondition((try? RevocationList.parse(der))?.map(\.der) == [der], "CRL does not round-trip through DER")
        }
        guard let bundle = try? TrustBundle(roots: fuzzBundle.roots, revocationLists: lists) else { return }
        _ = bundle.revocation(of: fuzzChain)
    }

    /// A private key file (an SVID's key.pem, a CA key): PEM, any kind. A key that parses must
    /// sign for its own public key: a certificate it signs over its own public half verifies.
    static func privateKey(_ bytes: UnsafeRawBufferPointer) {
        guard let key = try? PrivateKey.parsePEM(Array(bytes)),
              let cert = try? CertificateAuthority.sign(subject: .init(commonName: "fuzz"), publicKeyOf: key, issuer: nil, signer: key,
                                                        validity: 60, extensions: [("basicConstraints", "critical,CA:TRUE")])
        else { return }
        precondition(key.matches(cert) && cert.isSigned(by: cert), "a \(cert.keyDescription) key was accepted that does not sign for its own public key")
    }

    private static func inspect(_ c: Certificate) {
        _ = (c.subject, c.issuer, c.serialHex, c.notBefore, c.notAfter, c.keyDescription, c.isSelfSigned, c.pathLength, c.pem)
        // What was parsed writes back to the same bytes, and those parse again.
        let der = c.der
        precondition((try? Certificate.parseDER(der))?.der == der, "certificate does not round-trip through DER")
        let facts = LeafFacts(c)
        precondition(facts.uris.count <= facts.sanCount, "more URI SANs than SANs: \(facts)")
        // When OpenSSL decoded the names at all, every one encoded reached the SVID rules.
        if facts.sanCount > 0, let encoded = SANOracle.count(der) {
            precondition(encoded == .init(names: facts.sanCount, uris: facts.uris.count),
                         "the DER holds \(encoded) but the SVID rules saw \(facts.sanCount) names, URIs \(facts.uris)")
        }
        for side in sides {
            guard case let .success(id) = side.check(facts) else { continue }
            precondition(facts.uris == [id.description], "identity \(id) accepted from URI SANs \(facts.uris)")
            precondition(!facts.isCA && facts.allowsDigitalSignature, "identity \(id) accepted from a leaf that may not be one")
        }
    }

    private static let sides: [PeerVerification] = {
        let td = "cluster.local"
        let expected = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
        return [.inbound(trustDomains: [td]), .outbound(expected: [expected]), .init(.inspect(trustDomains: nil)),
                .init(.inspect(trustDomains: [td]))]
    }()

    /// A pending request of our own: the CA's answer is checked against it.
    private static let certificateRequest = try! CertificateRequest(for: SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout"))
    /// A root of our own, made once: the bundle the CA's answers and the lists are checked against.
    private static let fuzzRoot: (certificate: Certificate, key: PrivateKey) = {
        let key = try! CertificateAuthority.generateKey(.ecP256)
        let root = try! CertificateAuthority.sign(subject: .init(organization: "hbone-fuzz", commonName: "root"), publicKeyOf: key,
                                                  issuer: nil, signer: key, validity: 86_400, extensions: CertificateAuthority.rootExtensions)
        return (root, key)
    }()
    private static let fuzzBundle = try! TrustBundle(roots: [fuzzRoot.certificate])
    /// An SVID under that root, for the lists to be checked against.
    private static let fuzzChain: [Certificate] = {
        let svid = try! CertificateAuthority.issueSVID(SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout"), ca: fuzzRoot.certificate,
                                                       caKey: fuzzRoot.key, lifetime: .seconds(86_400))
        return [svid.certificate]
    }()
}
