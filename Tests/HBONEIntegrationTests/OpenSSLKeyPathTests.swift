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
}
