import ArgumentParser
import Foundation
import HBONECore
import HBONEIdentity
import HBONEAuthz

/// Authorization decision time: 10 policies, and 10,000 policies over 1,000 namespaces of which
/// about 10 apply to the destination. The baseline is an empty policy set in the same run.
struct Authz: ParsableCommand {
    @Option(help: "Decisions per batch.") var batch = 10_000
    @Option(help: "Batches per scenario (median and p99 over batches).") var batches = 200

    func run() throws {
        let facts = ConnectionFacts(source: try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout"),
                                    sourceIP: IPAddress("10.1.0.5")!, destinationIP: IPAddress("10.2.0.9")!, destinationPort: 8080)
        let target = PolicyTarget(namespace: "payments", labels: ["app": "ledger", "version": "v1"])
        let scenarios: [(String, PolicySet)] = [
            ("baseline: no policies", PolicySet([])),
            ("10 policies", PolicySet(Authz.policies(namespaces: ["payments"], perNamespace: 10))),
            ("10,000 policies / 1,000 namespaces", PolicySet(Authz.policies(namespaces: ["payments"] + (1..<1000).map { "ns-\($0)" }, perNamespace: 10))),
        ]
        for (name, set) in scenarios {
            var expected: Decision?
            var perDecision: [Double] = []
            for _ in 0..<batches {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var last: Decision?
                for _ in 0..<batch { last = set.decide(facts, for: target) }
                let t1 = DispatchTime.now().uptimeNanoseconds
                perDecision.append(Double(t1 - t0) / Double(batch))
                if expected == nil { expected = last }
            }
            perDecision.sort()
            print(String(format: "%-38@ median %7.1f ns  p99 %7.1f ns  (%@)", name as NSString, percentile(perDecision, 0.5), percentile(perDecision, 0.99),
                         (expected?.description ?? "-") as NSString))
        }
        print("command: \(CommandLine.arguments.joined(separator: " "))")
    }

    /// Per namespace: DENYs that do not match, selector policies, and an ALLOW that matches last,
    /// so every applicable policy is evaluated.
    static func policies(namespaces: [String], perNamespace: Int) -> [Policy] {
        var out: [Policy] = []
        for ns in namespaces {
            for i in 0..<perNamespace {
                var m = Match()
                let action: Policy.Action
                switch i % 4 {
                case 0:
                    action = .deny
                    m.principals = [.exact("cluster.local/ns/shop/sa/frontend-\(i)")]
                case 1:
                    action = .deny
                    m.sourceIps = [CIDR("192.168.\(i).0/24")!]
                    m.destinationPorts = [9000 + UInt16(i)]
                case 2:
                    action = .allow
                    m.namespaces = [.prefix("ops-")]
                    m.notPrincipals = [.suffix("/sa/admin")]
                default:
                    action = .allow
                    m.principals = [.exact("cluster.local/ns/other/sa/x-\(i)")]
                }
                let scope: Policy.Scope = i == 3 ? .workloadSelector(["app": "ledger"]) : .namespace
                out.append(Policy(name: "p-\(i)", namespace: ns, scope: scope, action: action, rules: [[[m]]]))
            }
            var last = Match()
            last.principals = [.prefix("cluster.local/ns/payments/")]
            last.destinationPorts = [8080, 8443]
            out.append(Policy(name: "allow-payments", namespace: ns, scope: .namespace, action: .allow, rules: [[[last]]]))
        }
        return out
    }
}
