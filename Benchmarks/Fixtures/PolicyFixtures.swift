import HBONECore
import HBONEIdentity
import HBONEAuthz

/// The policy sets the authorization benchmarks decide against: per namespace, DENYs that do not
/// match, selector policies, and an ALLOW that matches last, so every applicable policy is evaluated.
public enum PolicyFixtures {
    /// A connection from payments/checkout to a ledger pod on 8080.
    public static let facts = ConnectionFacts(source: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout"),
                                              sourceIP: IPAddress("10.1.0.5")!, destinationIP: IPAddress("10.2.0.9")!, destinationPort: 8080)
    public static let target = PolicyTarget(namespace: "payments", labels: ["app": "ledger", "version": "v1"])

    /// Ten policies in the destination's namespace.
    public static func ten() -> PolicySet { PolicySet(policies(namespaces: ["payments"], perNamespace: 10)) }

    /// 10,000 policies over 1,000 namespaces; about ten apply to the destination.
    public static func tenThousand() -> PolicySet {
        PolicySet(policies(namespaces: ["payments"] + (1..<1000).map { "ns-\($0)" }, perNamespace: 10))
    }

    public static func policies(namespaces: [String], perNamespace: Int) -> [Policy] {
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
