import Foundation
import Testing
import HBONETestSupport
import HBONEIdentity
import HBONETLS
@testable import HBONEApp

/// The command-line tools as library calls: the CA, the cacerts check, the admin tables.
@Suite struct ToolsTests {
    func scratch(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "hbone-tools-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        return dir
    }

    @Test func aRootAnIntermediateAndAnSVIDChainTogether() throws {
        let dir = scratch("ca")
        _ = try MeshCA.createRoot(out: dir + "/root", keyType: .ecP256, days: 30, organization: "test", force: false)
        _ = try MeshCA.createIntermediate(root: dir + "/root", cluster: "east", out: dir + "/east", trustDomain: "cluster.local",
                                          keyType: .ecP256, days: 10, force: false)
        let id = try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
        _ = try MeshCA.issue(ca: dir + "/east", identity: id, lifetime: .seconds(3600), out: dir + "/svid", force: false)
        let key = try CertifiedKey(directory: dir + "/svid")
        #expect(key.identity == id)
        let bundle = try TrustBundle(file: dir + "/root/root-cert.pem")
        #expect(bundle.verify(chain: key.chain) == nil)
        // Keys are private from their first byte.
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/svid/key.pem")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(CACertsCheck.run([dir + "/east"]).ok)
    }

    @Test func existingFilesAreNotOverwrittenWithoutForce() throws {
        let dir = scratch("force")
        _ = try MeshCA.createRoot(out: dir, keyType: .ecP256, days: 30, organization: "test", force: false)
        #expect(throws: ToolError.self) { try MeshCA.createRoot(out: dir, keyType: .ecP256, days: 30, organization: "test", force: false) }
        _ = try MeshCA.createRoot(out: dir, keyType: .ecP256, days: 30, organization: "test", force: true)
    }

    @Test func anIntermediateOutsideTheTrustDomainGrammarIsRefused() throws {
        let dir = scratch("td")
        _ = try MeshCA.createRoot(out: dir + "/root", keyType: .ecP256, days: 30, organization: "test", force: false)
        #expect(throws: ToolError.self) {
            try MeshCA.createIntermediate(root: dir + "/root", cluster: "x", out: dir + "/x", trustDomain: "Not A Domain", keyType: .ecP256, days: 1, force: false)
        }
    }

    @Test func cacertsUnderTwoRootsAreNotWired() {
        #expect(CACertsCheck.run([TestPKI.path("east"), TestPKI.path("west")]).ok)
        let mixed = CACertsCheck.run([TestPKI.path("east"), TestPKI.path("west2")])
        #expect(!mixed.ok)
        #expect(mixed.text.contains("2 different roots"))
        #expect(!CACertsCheck.run(["/nonexistent"]).ok)
    }

    @Test func adminTablesComeFromTheConfigDump() {
        let dump: [String: Any] = [
            "workloads": [["node": "west", "namespace": "payments", "name": "ledger-0", "workloadIps": ["10.1.0.20"], "protocol": "HBONE",
                           "identity": "spiffe://cluster.local/ns/payments/sa/ledger", "local": true]],
            "policies": [["namespace": "payments", "name": "deny-9000", "action": "DENY", "scope": "WorkloadSelector",
                          "rules": [[[["destinationPorts": [9000]]]]]]],
            "config": ["node": "west"],
        ]
        let workloads = AdminClient.render(.workloads, dump).split(separator: "\n")
        #expect(workloads.count == 2)
        #expect(workloads[0].hasPrefix("NODE"))
        #expect(workloads[1].contains("ledger-0") && workloads[1].contains("10.1.0.20") && workloads[1].hasSuffix("yes"))
        #expect(AdminClient.render(.policies, dump).contains("deny-9000  DENY    WorkloadSelector  1      no       0"))
        #expect(AdminClient.render(.config, dump).contains("\"node\" : \"west\""))
    }
}
