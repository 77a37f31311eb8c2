import Testing
import HBONETestSupport
import HBONEIdentity
@testable import HBONETLS

/// TLS to istiod: server authentication only, its certificate checked against the roots and the
/// name dialled (or ALT_XDS_HOSTNAME), ALPN h2, no client certificate.
@Suite struct ControlPlaneTLSTests {
    static func istiod() throws -> CertifiedKey {
        let (chain, key) = try CertifiedKey.readFiles(directory: TestPKI.path("istiod"))
        return CertifiedKey(unchecked: chain, key: key, identity: checkout)   // the identity is unused: istiod has no SVID
    }

    static func pair(name: String, alternative: String? = nil, clientBundle: String = "bundle-root.pem") throws -> EnginePair {
        let server = try ControlPlaneTLSContext(serving: istiod(), trust: bundle())
        let client = try ControlPlaneTLSContext(trust: bundle(clientBundle))
        return EnginePair(client: try TLSEngine(controlPlane: client, serverName: name, alternativeName: alternative),
                          server: try TLSEngine(controlPlane: server, serverName: ""))
    }

    @Test(arguments: ["istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "127.0.0.1"])
    func theRightNameUnderTheRootConnectsWithH2(name: String) throws {
        let pair = try Self.pair(name: name)
        let (c, s) = pair.run()
        #expect(c == .complete && s == .complete, "\(c) \(s)")
        #expect(pair.client.alpn == "h2")
        #expect(pair.client.peerIdentity == nil)   // not an SVID
    }

    @Test func aWrongNameIsRefused() throws {
        let pair = try Self.pair(name: "istiod.other.svc")
        guard case let .failed(error) = pair.run().client else {
            Issue.record("connected to a server that is not the one dialled")
            return
        }
        #expect(error.code == "hostname_mismatch", "\(error)")
    }

    @Test func theAlternativeNameIsAccepted() throws {
        let pair = try Self.pair(name: "istiod.elsewhere", alternative: "istiod.istio-system.svc")
        #expect(pair.run().client == .complete)
    }

    @Test func aForeignRootIsRefused() throws {
        let pair = try Self.pair(name: "istiod.istio-system.svc", clientBundle: "bundle-root2.pem")
        guard case let .failed(error) = pair.run().client else {
            Issue.record("trusted a server under another root")
            return
        }
        #expect(error.code == "unknown_issuer", "\(error)")
    }

    @Test func aServerWithoutH2IsRefused() throws {
        let server = try ControlPlaneTLSContext(serving: Self.istiod(), trust: bundle(), selectH2: false)
        let client = try ControlPlaneTLSContext(trust: bundle())
        let pair = EnginePair(client: try TLSEngine(controlPlane: client, serverName: "istiod.istio-system.svc"),
                              server: try TLSEngine(controlPlane: server, serverName: ""))
        guard case let .failed(error) = pair.run().client else {
            Issue.record("accepted a server without h2")
            return
        }
        #expect(error.code == "no_alpn_h2", "\(error)")
    }
}
