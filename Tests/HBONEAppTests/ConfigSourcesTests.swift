import Testing
import HBONEAuthz
@testable import HBONEApp

/// How the file's and istiod's resources add up.
@Suite struct ConfigSourcesTests {
    static func policy(_ name: String, _ action: Policy.Action, namespace: String = "payments") -> Policy {
        Policy(name: name, namespace: namespace, scope: .namespace, action: action, rules: [])
    }

    /// One policy per namespace/name: istiod's replaces the file's of the same name instead of both
    /// applying (two ALLOW policies under one name would grant their union).
    @Test func anXDSPolicyReplacesTheFilesOfTheSameName() {
        let file = [Self.policy("a", .allow), Self.policy("b", .deny), Self.policy("a", .allow, namespace: "shop")]
        let merged = ConfigSources.mergedPolicies(file: file, xds: [Self.policy("a", .deny)])
        #expect(merged.map(\.key) == ["payments/b", "shop/a", "payments/a"])
        #expect(merged.first { $0.key == "payments/a" }?.action == .deny)
        #expect(ConfigSources.mergedPolicies(file: file, xds: []).map(\.key) == file.map(\.key))
    }
}
