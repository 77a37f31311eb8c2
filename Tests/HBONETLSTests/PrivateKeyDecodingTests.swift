import Foundation
import Testing
import HBONETestSupport
@testable import HBONETLS

/// Private keys from PEM: P-256 in PKCS#8 and SEC1 take the shim's direct decoder on OpenSSL
/// 3.0/3.1 (the provider decoders took about 0.6 ms per key), everything else the general one;
/// whichever way, the key signs what verifies with its certificate. A P-256 key whose public
/// point is not its scalar's is refused when read (the general decoder accepted it, and it then
/// signed for another key than its certificate's).
@Suite struct PrivateKeyDecodingTests {
    /// Signs a self-issued certificate with `key` and checks it against the key's own public key.
    func signsAndVerifies(_ key: PrivateKey) throws -> Bool {
        let cert = try CertificateAuthority.sign(subject: .init(commonName: "k"), publicKeyOf: key, issuer: nil, signer: key,
                                                 validity: 3600, extensions: [("basicConstraints", "critical,CA:TRUE")])
        return key.matches(cert) && cert.isSigned(by: cert)
    }

    @Test func everyKindDecodesAndSigns() throws {
        for type in KeyType.allCases {
            let generated = try CertificateAuthority.generateKey(type)
            let key = try PrivateKey.parsePEM(Array(generated.pkcs8PEM.utf8))
            #expect(try signsAndVerifies(key), "\(type)")
        }
    }

    /// SEC1 ("EC PRIVATE KEY", as `openssl ec` and older tools write it), from the test PKI's key.
    @Test func sec1KeysDecodeAndMatchTheirCertificate() throws {
        let dir = NSTemporaryDirectory() + "hbone-sec1-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(run("/usr/bin/openssl", ["ec", "-in", TestPKI.path("certs-east/payments/checkout/key.pem"), "-out", dir + "/sec1.pem"]) == 0)
        let pem = [UInt8](FileManager.default.contents(atPath: dir + "/sec1.pem") ?? Data())
        #expect(String(decoding: pem, as: UTF8.self).hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        let key = try PrivateKey.parsePEM(pem)
        let leaf = try Certificate.parsePEMChain(TestPKI.bytes("certs-east/payments/checkout/cert-chain.pem"))[0]
        #expect(key.matches(leaf))
        #expect(try signsAndVerifies(key))
    }

    @Test func aKeyWhosePointIsNotItsScalarsIsRefused() throws {
        #expect(throws: TLSError.self) { try PrivateKey.parsePEM(TestPKI.bytes("bad/inconsistent-key/key.pem")) }
        // Behind an EC PARAMETERS block (as `openssl ecparam -genkey` writes), so the general
        // decoder reads it: refused there too.
        let params = Array("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n".utf8)
        #expect(throws: TLSError.self) { try PrivateKey.parsePEM(params + TestPKI.bytes("bad/inconsistent-key/key.pem")) }
        #expect(try signsAndVerifies(PrivateKey.parsePEM(params + TestPKI.bytes("certs-east/payments/checkout/key.pem"))))
        do {
            _ = try CertifiedKey(directory: TestPKI.path("bad/inconsistent-key"))
            Issue.record("an SVID whose key signs for another key was loaded")
        } catch {
            #expect(error.reason.contains("public half does not belong to its private half"), "\(error.reason)")
        }
    }

    @Test func whatIsNotAKeyIsRefused() {
        for bad in ["", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n",
                    String(decoding: TestPKI.bytes("certs-east/payments/checkout/cert-chain.pem"), as: UTF8.self)] {
            #expect(throws: TLSError.self) { try PrivateKey.parsePEM(Array(bad.utf8)) }
        }
    }
}
