import Foundation
import Testing
import HBONEIdentity
@testable import HBONETLS

/// A small CA hierarchy built in memory for one case.
struct Hierarchy {
    let root: (Certificate, PrivateKey)
    let chain: [(Certificate, PrivateKey)]   // intermediates, top first

    static func make(rootKey: KeyType = .ecP256, depth: Int = 1, pathlen: [Int?] = [0]) throws -> Hierarchy {
        let rk = try CertificateAuthority.generateKey(rootKey)
        let rc = try CertificateAuthority.sign(subject: .init(organization: "t", commonName: "root"), publicKeyOf: rk, issuer: nil, signer: rk,
                                               validity: 86400, extensions: [("basicConstraints", "critical,CA:TRUE"), ("keyUsage", "critical,keyCertSign,cRLSign"), ("subjectKeyIdentifier", "hash")])
        var chain: [(Certificate, PrivateKey)] = []
        var issuer = (rc, rk)
        for level in 0..<depth {
            let k = try CertificateAuthority.generateKey(.ecP256)
            let p = level < pathlen.count ? pathlen[level] : nil
            let c = try CertificateAuthority.sign(subject: .init(organization: "t", commonName: "int\(level)"), publicKeyOf: k, issuer: issuer.0, signer: issuer.1,
                                                  validity: 86400, extensions: [("basicConstraints", "critical,CA:TRUE" + (p.map { ",pathlen:\($0)" } ?? "")),
                                                                                ("keyUsage", "critical,keyCertSign,cRLSign"), ("subjectKeyIdentifier", "hash"), ("authorityKeyIdentifier", "keyid")])
            chain.append((c, k))
            issuer = (c, k)
        }
        return Hierarchy(root: (rc, rk), chain: chain)
    }

    var bundle: TrustBundle { get throws { try TrustBundle(roots: [root.0]) } }

    /// A leaf under the lowest intermediate; `overrides` replace the SVID defaults by extension name.
    func leaf(uri: String? = "spiffe://cluster.local/ns/payments/sa/checkout", key: KeyType = .ecP256, validity: TimeInterval = 3600,
              backdate: TimeInterval = 60, overrides: [String: String?] = [:], includeIntermediates: Bool = true) throws -> CertifiedKey {
        var ext: [String: String] = [
            "basicConstraints": "critical,CA:FALSE", "keyUsage": "critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage": "serverAuth,clientAuth", "authorityKeyIdentifier": "keyid",
        ]
        if let uri { ext["subjectAltName"] = "critical,URI:\(uri)" }
        for (k, v) in overrides { ext[k] = v }
        let order = ["basicConstraints", "keyUsage", "extendedKeyUsage", "subjectAltName", "authorityKeyIdentifier"]
        let k = try CertificateAuthority.generateKey(key)
        let issuer = chain.last!
        let c = try CertificateAuthority.sign(subject: .init(), publicKeyOf: k, issuer: issuer.0, signer: issuer.1, validity: validity,
                                              notBeforeSkew: backdate, extensions: order.compactMap { n in ext[n].map { (n, $0) } })
        let presented = [c] + (includeIntermediates ? chain.reversed().map(\.0) : [])
        return CertifiedKey(unchecked: presented, key: k, identity: checkout)
    }
}

/// The identity-validation table: each defect refused with its own reason, inbound and outbound;
/// the accepted variants accepted. Plain `openssl verify` accepts several of these.
@Suite struct ValidationTableTests {
    enum Side: String, CaseIterable, Sendable { case inbound, outbound }

    /// Presents `peer` to the side under test (server for inbound, client for outbound).
    func handshake(_ side: Side, peer: CertifiedKey, trust: TrustBundle, trustDomains: Set<String> = ["cluster.local"],
                   expected: Set<SPIFFEID> = [checkout]) throws -> TLSEngine.HandshakeStatus {
        let ours = try Hierarchy.make()
        let ourKey = try ours.leaf(uri: "spiffe://cluster.local/ns/payments/sa/ledger")
        // Our side trusts the peer's root; the peer trusts ours.
        let peerTrust = try TrustBundle(roots: [ours.root.0])
        switch side {
        case .inbound:
            let server = try TLSEngine(context: TLSContext(role: .server, certifiedKey: ourKey, trust: trust), verification: .inbound(trustDomains: trustDomains))
            let client = try TLSEngine(context: TLSContext(role: .client, certifiedKey: peer, trust: peerTrust), verification: .outbound(expected: [ledger]))
            return EnginePair(client: client, server: server).run().server
        case .outbound:
            let client = try TLSEngine(context: TLSContext(role: .client, certifiedKey: ourKey, trust: trust), verification: .outbound(expected: expected))
            let server = try TLSEngine(context: TLSContext(role: .server, certifiedKey: peer, trust: peerTrust), verification: .inbound(trustDomains: ["cluster.local"]))
            return EnginePair(client: client, server: server).run().client
        }
    }

    func expectRefused(_ side: Side, _ peer: CertifiedKey, _ trust: TrustBundle, code: String, trustDomains: Set<String> = ["cluster.local"],
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let status = try handshake(side, peer: peer, trust: trust, trustDomains: trustDomains)
        guard case let .failed(error) = status else {
            Issue.record("\(side): accepted, expected \(code)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == code, "\(side): \(error)", sourceLocation: sourceLocation)
    }

    @Test(arguments: Side.allCases) func expired(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(validity: -3600, backdate: 7200), h.bundle, code: "expired")
    }

    @Test(arguments: Side.allCases) func notYetValid(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(validity: 7200, backdate: -3600), h.bundle, code: "not_yet_valid")
    }

    @Test(arguments: Side.allCases) func unrelatedRoot(side: Side) throws {
        let h = try Hierarchy.make(), other = try Hierarchy.make()
        try expectRefused(side, h.leaf(), other.bundle, code: "unknown_issuer")
    }

    @Test(arguments: Side.allCases) func missingIntermediate(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(includeIntermediates: false), h.bundle, code: "unknown_issuer")
    }

    @Test(arguments: Side.allCases) func intermediatePathlenExceeded(side: Side) throws {
        // root → int0 (pathlen 0) → int1 → leaf: int0 may not sign another CA.
        let h = try Hierarchy.make(depth: 2, pathlen: [0, nil])
        try expectRefused(side, h.leaf(), h.bundle, code: "path_length_exceeded")
    }

    @Test(arguments: Side.allCases) func leafIsCA(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(overrides: ["basicConstraints": "critical,CA:TRUE", "keyUsage": "critical,digitalSignature,keyCertSign"]), h.bundle, code: "leaf_is_ca")
    }

    @Test(arguments: Side.allCases) func withoutDigitalSignature(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(overrides: ["keyUsage": "critical,keyEncipherment"]), h.bundle, code: "missing_digital_signature")
    }

    @Test func withoutClientAuthInbound() throws {
        let h = try Hierarchy.make()
        try expectRefused(.inbound, h.leaf(overrides: ["extendedKeyUsage": "serverAuth"]), h.bundle, code: "missing_client_auth")
    }

    @Test func withoutServerAuthOutbound() throws {
        let h = try Hierarchy.make()
        try expectRefused(.outbound, h.leaf(overrides: ["extendedKeyUsage": "clientAuth"]), h.bundle, code: "missing_server_auth")
    }

    @Test(arguments: Side.allCases) func sanShapes(side: Side) throws {
        let h = try Hierarchy.make()
        try expectRefused(side, h.leaf(uri: nil, overrides: ["subjectAltName": nil]), h.bundle, code: "no_san")
        try expectRefused(side, h.leaf(uri: nil, overrides: ["subjectAltName": "DNS:checkout.payments.svc"]), h.bundle, code: "no_uri_san")
        try expectRefused(side, h.leaf(overrides: ["subjectAltName": "critical,URI:spiffe://cluster.local/ns/payments/sa/checkout,URI:spiffe://cluster.local/ns/payments/sa/x"]), h.bundle, code: "multiple_uri_sans")
        try expectRefused(side, h.leaf(uri: "https://checkout.payments"), h.bundle, code: "bad_spiffe_id_not_spiffe")
    }

    static let malformedIDs: [(String, String)] = [
        ("spiffe://Cluster.local/ns/payments/sa/checkout", "bad_spiffe_id_trust_domain_not_lowercase"),
        ("spiffe://cluster.local/ns//sa/checkout", "bad_spiffe_id_empty_segment"),
        ("spiffe://cluster.local/ns/./sa/checkout", "bad_spiffe_id_dot_segment"),
        ("spiffe://cluster.local/ns/../sa/checkout", "bad_spiffe_id_dot_segment"),
        ("spiffe://cluster.local/ns/pay%2Fments/sa/checkout", "bad_spiffe_id_percent_encoded"),
        ("spiffe://cluster.local:8443/ns/payments/sa/checkout", "bad_spiffe_id_has_port"),
        ("spiffe://user@cluster.local/ns/payments/sa/checkout", "bad_spiffe_id_has_user_info"),
        ("spiffe://cluster.local/ns/payments/sa/checkout?x=1", "bad_spiffe_id_has_query"),
        ("spiffe://cluster.local/ns/payments/sa/checkout#f", "bad_spiffe_id_has_fragment"),
        ("spiffe://cluster.local/ns/payments/sa/checkout/", "bad_spiffe_id_trailing_slash"),
        ("spiffe://cluster.local/workload/checkout", "bad_spiffe_id_not_ns_sa_shape"),
        ("spiffe://cluster.local/ns/payments/sa/" + String(repeating: "a", count: 2100), "bad_spiffe_id_too_long"),
    ]

    @Test(arguments: malformedIDs) func malformedSPIFFEIDsInbound(id: String, code: String) throws {
        let h = try Hierarchy.make()
        try expectRefused(.inbound, h.leaf(uri: id), h.bundle, code: code)
    }

    @Test(arguments: malformedIDs) func malformedSPIFFEIDsOutbound(id: String, code: String) throws {
        let h = try Hierarchy.make()
        try expectRefused(.outbound, h.leaf(uri: id), h.bundle, code: code)
    }

    @Test func foreignTrustDomainNeedsAnAlias() throws {
        let h = try Hierarchy.make()
        let peer = try h.leaf(uri: "spiffe://other.mesh/ns/payments/sa/checkout")
        try expectRefused(.inbound, peer, h.bundle, code: "untrusted_trust_domain")
        #expect(try handshake(.inbound, peer: peer, trust: h.bundle, trustDomains: ["cluster.local", "other.mesh"]) == .complete)
    }

    @Test func wrongIdentityOutbound() throws {
        let h = try Hierarchy.make()
        try expectRefused(.outbound, h.leaf(uri: "spiffe://cluster.local/ns/payments/sa/impostor"), h.bundle, code: "unexpected_identity")
    }

    @Test(arguments: Side.allCases) func acceptedVariants(side: Side) throws {
        let rsaRoot = try Hierarchy.make(rootKey: .rsa2048)
        #expect(try handshake(side, peer: rsaRoot.leaf(), trust: rsaRoot.bundle) == .complete, "RSA root with a P-256 leaf")
        let deep = try Hierarchy.make(depth: 2, pathlen: [1, 0])
        #expect(try handshake(side, peer: deep.leaf(), trust: deep.bundle) == .complete, "two intermediates deep")
        let p384 = try Hierarchy.make()
        #expect(try handshake(side, peer: p384.leaf(key: .ecP384), trust: p384.bundle) == .complete, "P-384 leaf")
    }
}
