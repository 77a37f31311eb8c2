import Testing
import HBONETestSupport
import HBONEIdentity
@testable import HBONETLS

/// Two engines wired back to back in memory: every byte one emits is fed to the other.
struct EnginePair {
    let client: TLSEngine
    let server: TLSEngine

    /// Shuttles ciphertext until neither side has anything to send. Returns each side's last status.
    func run(rounds: Int = 20) -> (client: TLSEngine.HandshakeStatus, server: TLSEngine.HandshakeStatus) {
        var c = client.handshake()
        var s = TLSEngine.HandshakeStatus.inProgress
        for _ in 0..<rounds {
            var moved = false
            client.takeCiphertext { bytes in moved = true; server.feed(bytes) }
            s = server.handshake()
            server.takeCiphertext { bytes in moved = true; client.feed(bytes) }
            c = client.handshake()
            if !moved { break }
        }
        return (c, s)
    }
}

func loadKey(_ dir: String) throws -> CertifiedKey {
    if dir.hasPrefix("bad/") {
        let (chain, key) = try CertifiedKey.readFiles(directory: TestPKI.path(dir))
        return CertifiedKey(unchecked: chain, key: key, identity: checkout)
    }
    return try CertifiedKey(directory: TestPKI.path(dir))
}
func bundle(_ file: String = "bundle-root.pem") throws -> TrustBundle { try TrustBundle(pem: TestPKI.bytes(file)) }
let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")

func makePair(clientCert: String = "certs-east/payments/checkout", serverCert: String = "certs-west/payments/ledger",
              expected: Set<SPIFFEID> = [ledger], trustDomains: Set<String> = ["cluster.local"],
              clientBundle: String = "bundle-root.pem", serverBundle: String = "bundle-root.pem") throws -> EnginePair {
    let clientContext = try TLSContext(role: .client, certifiedKey: loadKey(clientCert), trust: bundle(clientBundle))
    let serverContext = try TLSContext(role: .server, certifiedKey: loadKey(serverCert), trust: bundle(serverBundle))
    return EnginePair(
        client: try TLSEngine(context: clientContext, verification: .outbound(expected: expected)),
        server: try TLSEngine(context: serverContext, verification: .inbound(trustDomains: trustDomains)))
}

@Suite struct TLSEnginePairTests {
    @Test func mutualHandshakeSeesBothIdentities() throws {
        let pair = try makePair()
        let (c, s) = pair.run()
        #expect(c == .complete)
        #expect(s == .complete)
        #expect(pair.client.peerIdentity == ledger)
        #expect(pair.server.peerIdentity == checkout)
        #expect(pair.client.alpn == "h2")
        #expect(pair.client.protocolVersion == "TLSv1.3")
        #expect(pair.client.cipher.contains("AES"))
        // The chain sent is leaf + intermediate, never the root.
        #expect(pair.client.peerChain.count == 2)
    }

    @Test func applicationDataRoundTrips() throws {
        let pair = try makePair()
        _ = pair.run()
        let message = Array("hello over mTLS".utf8)
        #expect(message.withUnsafeBytes { pair.client.write($0) } == nil)
        pair.client.takeCiphertext { pair.server.feed($0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        defer { buffer.deallocate() }
        guard case let .bytes(n) = pair.server.read(into: buffer) else {
            Issue.record("no plaintext")
            return
        }
        #expect(Array(buffer[0..<n]) == message)
    }

    @Test func clientRejectsUnexpectedServerIdentity() throws {
        let pair = try makePair(expected: [checkout])
        let (c, _) = pair.run()
        guard case let .failed(error) = c else {
            Issue.record("handshake should fail, got \(c)")
            return
        }
        #expect(error.code == "unexpected_identity")
        #expect(pair.client.peerIdentity == nil)
    }

    @Test func serverRejectsClientFromUnrelatedRoot() throws {
        let pair = try makePair(clientCert: "certs-other/payments/checkout")
        let (_, s) = pair.run()
        guard case let .failed(error) = s else {
            Issue.record("server should refuse, got \(s)")
            return
        }
        #expect(error.code == "unknown_issuer")
    }

    @Test func clientRejectsServerFromUnrelatedRoot() throws {
        let pair = try makePair(serverCert: "certs-other/payments/ledger")
        let (c, _) = pair.run()
        guard case let .failed(error) = c else {
            Issue.record("client should refuse, got \(c)")
            return
        }
        #expect(error.code == "unknown_issuer")
    }

    @Test func bundleWithBothRootsAcceptsEither() throws {
        let pair = try makePair(clientCert: "certs-other/payments/checkout", serverBundle: "bundle-root-and-other.pem")
        let (c, s) = pair.run()
        #expect(c == .complete)
        #expect(s == .complete)
    }

    @Test(arguments: [
        ("bad/no-san", "no_san"),
        ("bad/dns-san-only", "no_uri_san"),
        ("bad/two-uri-sans", "multiple_uri_sans"),
        // A URI SAN with a NUL still counts: dropping it let the valid one beside it pass as the only one.
        ("bad/nul-uri-beside-valid-uri", "multiple_uri_sans"),
        ("bad/nul-in-uri", "bad_spiffe_id_bad_path_character"),
        ("bad/non-spiffe-uri", "bad_spiffe_id_not_spiffe"),
        ("bad/uppercase-trust-domain", "bad_spiffe_id_trust_domain_not_lowercase"),
        ("bad/not-ns-sa-shape", "bad_spiffe_id_not_ns_sa_shape"),
        ("bad/foreign-trust-domain", "untrusted_trust_domain"),
        ("bad/leaf-is-ca", "leaf_is_ca"),
        ("bad/no-digital-signature", "missing_digital_signature"),
        ("bad/server-auth-only", "missing_client_auth"),
        ("bad/missing-intermediate", "unknown_issuer"),
    ])
    func serverRejectsBadClientLeaf(dir: String, code: String) throws {
        let pair = try makePair(clientCert: dir)
        let (_, s) = pair.run()
        guard case let .failed(error) = s else {
            Issue.record("\(dir): server accepted")
            return
        }
        #expect(error.code == code, "\(dir): \(error)")
    }

    @Test func clientRejectsServerWithoutServerAuth() throws {
        let pair = try makePair(serverCert: "bad/client-auth-only")
        let (c, _) = pair.run()
        guard case let .failed(error) = c else {
            Issue.record("client accepted")
            return
        }
        #expect(error.code == "missing_server_auth")
    }

    /// The expected identity beside a URI SAN with a NUL is still two URI SANs, not the expected one alone.
    @Test func clientRejectsServerWithANulURIBesideTheExpectedOne() throws {
        let pair = try makePair(serverCert: "bad/nul-uri-beside-valid-uri", expected: [checkout])
        let (c, _) = pair.run()
        guard case let .failed(error) = c else {
            Issue.record("client accepted, peer \(String(describing: pair.client.peerIdentity))")
            return
        }
        #expect(error.code == "multiple_uri_sans")
    }

    @Test func trustDomainAliasAccepted() throws {
        let pair = try makePair(clientCert: "bad/foreign-trust-domain", trustDomains: ["cluster.local", "other.mesh"])
        let (_, s) = pair.run()
        #expect(s == .complete)
    }
}
