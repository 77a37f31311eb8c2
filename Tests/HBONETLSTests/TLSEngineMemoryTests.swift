import Testing
import HBONEIdentity
@testable import HBONETLS

/// What an established connection gives back, and that it keeps working afterwards.
@Suite struct TLSEngineMemoryTests {
    /// Sends `text` from one engine to the other and returns what the receiver read.
    func transfer(_ text: String, from a: TLSEngine, to b: TLSEngine) -> String {
        _ = Array(text.utf8).withUnsafeBytes { a.write($0) }
        a.takeCiphertext { b.feed($0) }
        var out = [UInt8](repeating: 0, count: 4096)
        guard case let .bytes(n) = out.withUnsafeMutableBytes({ b.read(into: $0) }) else { return "" }
        return String(decoding: out[0..<n], as: UTF8.self)
    }

    @Test func releasingHandshakeMemoryKeepsIdentityAndTraffic() throws {
        let pair = try makePair()
        #expect(pair.run() == (.complete, .complete))
        #expect(pair.server.bufferCapacity > 0)
        #expect(pair.client.peerChain.count == 2)
        pair.client.releaseHandshakeMemory()
        pair.server.releaseHandshakeMemory()
        #expect(pair.server.bufferCapacity == 0)
        #expect(pair.client.peerChain.isEmpty)
        #expect(pair.server.peerIdentity == checkout)
        #expect(pair.client.peerIdentity == ledger)
        #expect(transfer("ping", from: pair.client, to: pair.server) == "ping")
        #expect(transfer("pong", from: pair.server, to: pair.client) == "pong")
    }

    /// A burst larger than any record grows the outgoing buffer; it arrives intact, and an idle
    /// sweep gives the buffer back once it is empty, never while ciphertext waits in it.
    @Test func outgoingBufferCarriesABurstAndIsGivenBackWhenEmpty() throws {
        let pair = try makePair()
        #expect(pair.run() == (.complete, .complete))
        pair.server.releaseHandshakeMemory()
        let burst = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = burst.withUnsafeBytes { pair.server.write($0) }
        #expect(pair.server.pendingCiphertext > burst.count)
        pair.server.releaseIdleBuffers()          // ciphertext waiting: kept
        #expect(pair.server.pendingCiphertext > burst.count)
        pair.server.takeCiphertext { pair.client.feed($0) }
        #expect(pair.server.pendingCiphertext == 0)
        var received: [UInt8] = []
        var out = [UInt8](repeating: 0, count: 65536)
        while case let .bytes(n) = out.withUnsafeMutableBytes({ pair.client.read(into: $0) }) { received += out[0..<n] }
        #expect(received == burst)
        let grown = pair.server.bufferCapacity
        pair.server.releaseIdleBuffers()
        #expect(pair.server.bufferCapacity < grown)
        #expect(transfer("after", from: pair.server, to: pair.client) == "after")
    }

    @Test func trimmingCarriesUnreadAndUnsentCiphertextOver() throws {
        let pair = try makePair()
        #expect(pair.run() == (.complete, .complete))
        // Unread: ciphertext fed to the server but not yet read. Unsent: the server's own reply.
        _ = Array("request".utf8).withUnsafeBytes { pair.client.write($0) }
        pair.client.takeCiphertext { pair.server.feed($0) }
        _ = Array("reply".utf8).withUnsafeBytes { pair.server.write($0) }
        let before = pair.server.bufferCapacity
        pair.server.trimBuffers(above: before)      // at the limit: kept
        #expect(pair.server.bufferCapacity == before)
        pair.server.trimBuffers(above: 0)
        var out = [UInt8](repeating: 0, count: 64)
        guard case let .bytes(n) = out.withUnsafeMutableBytes({ pair.server.read(into: $0) }) else {
            Issue.record("unread ciphertext was lost")
            return
        }
        #expect(String(decoding: out[0..<n], as: UTF8.self) == "request")
        pair.server.takeCiphertext { pair.client.feed($0) }
        guard case let .bytes(m) = out.withUnsafeMutableBytes({ pair.client.read(into: $0) }) else {
            Issue.record("unsent ciphertext was lost")
            return
        }
        #expect(String(decoding: out[0..<m], as: UTF8.self) == "reply")
    }
}

@Suite struct TLSLibraryTests {
    /// A PEM-loaded EC key signs certificates whichever EC method is in effect (with the built-in
    /// method a provider-native key failed with "command not supported" until converted).
    @Test func pemLoadedECKeySignsAndVerifies() throws {
        let generated = try CertificateAuthority.generateKey(.ecP256)
        let key = try PrivateKey.parsePEM(Array(generated.pkcs8PEM.utf8))
        let root = try CertificateAuthority.sign(subject: .init(commonName: "root"), publicKeyOf: key, issuer: nil, signer: key,
                                                 validity: 3600, extensions: [("basicConstraints", "critical,CA:TRUE")])
        let leafKey = try CertificateAuthority.generateKey(.ecP384)
        let leaf = try CertificateAuthority.sign(subject: .init(commonName: "leaf"), publicKeyOf: leafKey, issuer: root, signer: key,
                                                 validity: 3600, extensions: [("basicConstraints", "critical,CA:FALSE")])
        #expect(leaf.isSigned(by: root))
        #expect(key.matches(root))
        #expect(!TLSLibrary.version.isEmpty)
        let old = TLSLibrary.version.hasPrefix("OpenSSL 3.0.") || TLSLibrary.version.hasPrefix("OpenSSL 3.1.")
        #expect(TLSLibrary.builtinECKeys == old)
        #expect(TLSLibrary.sharedGroupDecoder == old)
        #expect(TLSLibrary.builtinX25519 == old)
    }
}

@Suite struct OffCurveKeyTests {
    /// A leaf whose EC point is not on the curve (and whose signature therefore fails too) is refused
    /// whichever EC key path is in effect: when parsed, when configured, or in the handshake.
    @Test func offCurveClientKeyIsRefused() throws {
        let pair: EnginePair
        do {
            pair = try makePair(clientCert: "bad/off-curve-key")
        } catch {
            // Refused while loading or configuring (today: "decode error" when the SSL_CTX takes it).
            #expect("\(error)".contains("decode error"))
            return
        }
        let (_, s) = pair.run()
        #expect(s != .complete, "server accepted an off-curve key")

    }
}
