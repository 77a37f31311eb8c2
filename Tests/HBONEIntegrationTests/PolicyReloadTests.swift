import Foundation
import Testing
import HBONETestSupport

@Suite(.serialized) struct PolicyReloadTests {
    static let denyCheckout = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: deny-checkout
      namespace: payments
    spec:
      action: DENY
      rules:
      - from:
        - source:
            principals: ["cluster.local/ns/payments/sa/checkout"]
    """

    @Test func newDenyPolicyClosesOpenTunnelsAndBrokenFilesKeepTheLastGoodSet() throws {
        let (policyDir, setting) = try policyDirectory("policies")
        var o = Mesh.Options()
        o.westExtra = setting
        let mesh = try Mesh(net: 51, o)
        defer { mesh.stop() }

        // A tunnel that is allowed now and stays open.
        let holder = try mesh.startClient("hold", ["--size", "15"])
        #expect(mesh.waitForLog(mesh.eastLog, timeout: 1) { _ in false } == false)   // let it connect
        try Self.denyCheckout.write(toFile: policyDir + "/deny.yaml", atomically: true, encoding: .utf8)
        let r = try holder.result()
        #expect(r["echoed"] as? String == "hi")
        #expect(r["closed_by_peer"] as? Bool == true, "\(r)")
        #expect((r["after"] as? Double ?? 99) < 10)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("closing tunnel denied after policy change") })

        // New tunnels are refused now.
        #expect(try mesh.client("expect-fail")["failed"] as? Bool == true)

        // A broken file is rejected with its path and line; the DENY stays in force.
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: payments}\nspec:\n  action: MAYBE\n"
            .write(toFile: policyDir + "/broken.yaml", atomically: true, encoding: .utf8)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("config reload rejected") && $0.contains("broken.yaml:5") })
        #expect(try mesh.client("expect-fail")["failed"] as? Bool == true)

        // Removing both files allows traffic again.
        try FileManager.default.removeItem(atPath: policyDir + "/broken.yaml")
        try FileManager.default.removeItem(atPath: policyDir + "/deny.yaml")
        #expect(mesh.waitForLog(mesh.westLog) { $0.components(separatedBy: "configuration applied").count >= 3 })
        #expect(try mesh.client("echo", ["--size", "10"])["intact"] as? Bool == true)
    }
}
