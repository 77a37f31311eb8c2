import Testing
import HBONECore
import HBONEIdentity
@testable import HBONEAuthz

let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/frontend")
let target = PolicyTarget(namespace: "payments", labels: ["app": "ledger"])

func facts(_ id: SPIFFEID?, ip: String = "10.0.0.5", port: UInt16 = 8080) -> ConnectionFacts {
    ConnectionFacts(source: id, sourceIP: IPAddress(ip)!, destinationIP: IPAddress("10.0.1.1")!, destinationPort: port)
}

func policy(_ name: String, ns: String = "payments", scope: Policy.Scope = .namespace, _ action: Policy.Action, dryRun: Bool = false, _ matches: Match...) -> Policy {
    Policy(name: name, namespace: ns, scope: scope, action: action, dryRun: dryRun, rules: matches.map { [[$0]] })
}

func match(_ build: (inout Match) -> Void) -> Match {
    var m = Match()
    build(&m)
    return m
}

@Suite struct PolicySetTests {
    @Test func noPoliciesAllow() {
        #expect(PolicySet([]).decide(facts(checkout), for: target).allowed)
    }

    @Test func emptyAllowDeniesEverything() {
        let set = PolicySet([Policy(name: "allow-nothing", namespace: "payments", scope: .namespace, action: .allow, rules: [])])
        let d = set.decide(facts(checkout), for: target)
        #expect(!d.allowed)
        #expect(d.reason == "no ALLOW policy matched")
    }

    @Test func ruleWithNoClausesMatchesEverything() {
        let set = PolicySet([Policy(name: "deny-all", namespace: "payments", scope: .namespace, action: .deny, rules: [[]])])
        #expect(set.decide(facts(checkout), for: target).policy == "payments/deny-all")
    }

    @Test func denyWinsOverAllow() {
        let set = PolicySet([
            policy("allow", .allow, match { $0.principals = [.presence] }),
            policy("deny", .deny, match { $0.principals = [.exact(checkout.principal)] }),
        ])
        let d = set.decide(facts(checkout), for: target)
        #expect(!d.allowed)
        #expect(d.policy == "payments/deny")
    }

    @Test func allowNamesItsPolicy() {
        let set = PolicySet([policy("allow-checkout", .allow, match { $0.principals = [.exact(checkout.principal)] })])
        #expect(set.decide(facts(checkout), for: target).policy == "payments/allow-checkout")
        #expect(!set.decide(facts(frontend), for: target).allowed)
    }

    @Test func noIdentityNeverMatchesPositivePrincipalButSatisfiesNot() {
        let allow = PolicySet([policy("a", .allow, match { $0.principals = [.presence] })])
        #expect(!allow.decide(facts(nil), for: target).allowed)
        let notP = PolicySet([policy("a", .allow, match { $0.notPrincipals = [.exact(checkout.principal)] })])
        #expect(notP.decide(facts(nil), for: target).allowed)
        #expect(!notP.decide(facts(checkout), for: target).allowed)
    }

    @Test func l7OnlyAllowNeverMatchesButL7DenyFailsClosed() {
        let l7 = match { $0.unjudgeable = ["methods"] }
        #expect(!PolicySet([policy("a", .allow, l7)]).decide(facts(checkout), for: target).allowed)
        let d = PolicySet([policy("d", .deny, l7)]).decide(facts(checkout), for: target)
        #expect(!d.allowed)
        #expect(d.policy == "payments/d")
    }

    @Test func dryRunOnlyObserves() {
        let set = PolicySet([policy("d", .deny, dryRun: true, match { $0.principals = [.presence] })])
        let d = set.decide(facts(checkout), for: target)
        #expect(d.allowed)
        #expect(d.observed == ["payments/d(dry-run deny)"])
    }

    @Test func scopes() {
        let global = policy("g", ns: "istio-system", .deny, match { $0.namespaces = [.exact("shop")] })
        let otherNamespace = policy("o", ns: "shop", .deny, match { _ in })
        let selector = policy("s", scope: .workloadSelector(["app": "ledger"]), .deny, match { $0.destinationPorts = [9090] })
        let set = PolicySet([global, otherNamespace, selector])
        #expect(!set.decide(facts(frontend), for: target).allowed)         // root namespace applies everywhere
        #expect(set.decide(facts(checkout), for: target).allowed)          // shop's own policy does not apply to payments
        #expect(!set.decide(facts(checkout, port: 9090), for: target).allowed)
        #expect(set.decide(facts(checkout, port: 9090), for: PolicyTarget(namespace: "payments", labels: ["app": "other"])).allowed)
    }

    @Test func fieldsAndNegations() {
        let m = match {
            $0.namespaces = [.prefix("pay")]
            $0.sourceIps = [CIDR("10.0.0.0/24")!]
            $0.notSourceIps = [CIDR("10.0.0.9")!]
            $0.destinationPorts = [8080, 8443]
            $0.notPrincipals = [.suffix("/sa/frontend")]
        }
        let set = PolicySet([policy("a", .allow, m)])
        #expect(set.decide(facts(checkout), for: target).allowed)
        #expect(!set.decide(facts(checkout, ip: "10.0.0.9"), for: target).allowed)
        #expect(!set.decide(facts(checkout, ip: "10.0.1.5"), for: target).allowed)
        #expect(!set.decide(facts(checkout, port: 9000), for: target).allowed)
        #expect(!set.decide(facts(frontend), for: target).allowed)
    }

    @Test(arguments: [
        ("*", "x", true), ("*", "", false), ("pre*", "prefix", true), ("pre*", "xpre", false),
        ("*fix", "suffix", true), ("*fix", "fixed", false), ("exact", "exact", true), ("exact", "exactly", false),
    ])
    func istioStringMatching(pattern: String, value: String, matches: Bool) {
        #expect(StringMatch(istio: pattern).matches(value) == matches)
    }
}
