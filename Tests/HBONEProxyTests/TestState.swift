import HBONETestSupport
import HBONEConfig
import HBONEIdentity
import HBONETLS
@testable import HBONEProxy

/// A snapshot built from a YAML config with the test PKI's root bundle and the given SVIDs, as the
/// table tests of routing and admission need it (no files; the environment only as given).
func testState(_ yaml: String, certificates: [CertifiedKey] = [], environment: [String: String] = [:]) throws -> ProxyState {
    let config = try ProxyConfig.parse(yaml: yaml, file: "test.yaml", environment: environment)
    var keys: [SPIFFEID: CertifiedKey] = [:]
    for key in certificates { keys[key.identity] = key }
    return try ProxyState(config: config, trust: TrustBundle(pem: TestPKI.bytes("bundle-root.pem")), certificates: keys, version: 1)
}
