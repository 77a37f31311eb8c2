import Foundation
import Testing
import HBONETestSupport

/// hbone routes EC keys through OpenSSL's built-in method on 3.0/3.1 (TLSLibrary); a proxy started
/// with HBONE_OPENSSL_PROVIDER_EC=1 keeps the provider path. Both must interoperate.
@Suite(.serialized) struct OpenSSLKeyPathTests {
    @Test func providerPathProxyTunnelsWithBuiltinPathProxy() throws {
        var o = Mesh.Options()
        o.westEnvironment = ["HBONE_OPENSSL_PROVIDER_EC": "1"]
        let mesh = try Mesh(net: 69, o)
        defer { mesh.stop() }
        let r = try mesh.client("echo", ["--size", "65536"])
        #expect(r["intact"] as? Bool == true)
        let west = try String(contentsOfFile: mesh.westLog, encoding: .utf8)
        let east = try String(contentsOfFile: mesh.eastLog, encoding: .utf8)
        #expect(west.contains("ec_keys=provider"))
        let version = east.components(separatedBy: "openssl=\"OpenSSL ").dropFirst().first ?? ""
        let oldDecoder = version.hasPrefix("3.0.") || version.hasPrefix("3.1.")
        #expect(east.contains("ec_keys=\"built-in method\"") == oldDecoder)
    }

    /// A peer that offers only P-256 key shares (FIPS-style) handshakes on the built-in EC path too.
    @Test func p256OnlyPeerHandshakes() throws {
        let mesh = try Mesh(net: 71)
        defer { mesh.stop() }
        let (status, out) = try runProgram("/usr/bin/env", [
            "timeout", "10", "openssl", "s_client", "-connect", "\(mesh.westIP):15008", "-brief", "-alpn", "h2", "-groups", "P-256",
            "-cert", TestPKI.path("certs-east/payments/checkout/cert-chain.pem"), "-key", TestPKI.path("certs-east/payments/checkout/key.pem"), "-cert_chain", TestPKI.path("east/ca-cert.pem"),
            "-CAfile", TestPKI.path("bundle-root.pem"),
        ], includeErrors: true)
        #expect(status == 0, "\(out)")
        #expect(out.contains("CONNECTION ESTABLISHED"))
        #expect(out.contains("Server Temp Key: ECDH, prime256v1"))
        #expect(out.contains("Verification: OK"))
        #expect(mesh.waitForMetric(admin: mesh.westAdmin, "hbone_handshakes_total") { $0 >= 1 })
        let west = try String(contentsOfFile: mesh.westLog, encoding: .utf8)
        #expect(!west.contains("TLS handshake failed"))
    }
}
