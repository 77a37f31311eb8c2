import Testing
import HBONETestSupport
import HBONECore
import HBONEIdentity
@testable import HBONEAuthz

/// The compiled evaluator (byte arena, flattened rules) against the plain one (`Policy.matches`,
/// written straight from the semantics) over random policies and connections: both must reach the
/// same verdict, for the same reason, naming a policy that really decided.
@Suite struct DifferentialTests {
    typealias Random = SplitMix

    static let namespaces = ["payments", "shop", "istio-system", "default"]
    static let accounts = ["checkout", "ledger", "audit", "default"]
    static let patterns = ["cluster.local/ns/payments/sa/checkout", "cluster.local/ns/shop/*", "*/sa/ledger", "*", "cluster.local/ns/payments/sa/audit",
                           "payments", "shop", "pay*", "*ult", "other.td/ns/payments/sa/checkout"]
    static let blocks = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.168.0.0/24", "::ffff:10.1.0.0/112", "::/0", "fd00::/8"]
    static let addresses = ["10.1.2.3", "10.2.0.1", "192.168.0.7", "172.16.0.1", "fd00::5"]
    static let ports: [UInt16] = [80, 8080, 9000, 15008]

    static func match(_ r: inout Random, action: Policy.Action) -> Match {
        var m = Match()
        func strings(_ percent: Int) -> [StringMatch] {
            r.chance(percent) ? (0..<(1 + r.below(2))).map { _ in StringMatch(istio: r.pick(patterns)) } : []
        }
        func cidrs(_ percent: Int) -> [CIDR] { r.chance(percent) ? (0..<(1 + r.below(2))).map { _ in CIDR(r.pick(blocks))! } : [] }
        func ports(_ percent: Int) -> [UInt16] { r.chance(percent) ? (0..<(1 + r.below(2))).map { _ in r.pick(Self.ports) } : [] }
        m.namespaces = strings(25); m.notNamespaces = strings(10)
        m.principals = strings(35); m.notPrincipals = strings(10)
        m.sourceIps = cidrs(20); m.notSourceIps = cidrs(10)
        m.destinationIps = cidrs(10); m.notDestinationIps = cidrs(5)
        m.destinationPorts = ports(30); m.notDestinationPorts = ports(10)
        if r.chance(5) { m.unjudgeable = ["methods"] }
        return m
    }

    static func policy(_ r: inout Random, index: Int) -> Policy {
        let action: Policy.Action = r.pick([.allow, .allow, .deny, .audit])
        let scope: Policy.Scope = r.chance(20) ? .global : r.chance(40) ? .workloadSelector(["app": r.pick(["ledger", "shop"])]) : .namespace
        let rules = (0..<r.below(3)).map { _ in (0..<(1 + r.below(2))).map { _ in (0..<(1 + r.below(2))).map { _ in match(&r, action: action) } } }
        return Policy(name: "p\(index)", namespace: r.pick(namespaces), scope: scope, action: action, dryRun: r.chance(10), rules: rules)
    }

    /// The semantics as written in the reference, over `Policy.matches`.
    static func oracle(_ policies: [Policy], root: String, _ facts: ConnectionFacts, _ target: PolicyTarget) -> (allowed: Bool, deciders: Set<String>, basis: Decision.Basis) {
        let applicable = policies.filter { p in
            (p.scope == .global || p.namespace == root || p.namespace == target.namespace) && p.selects(target) && !p.dryRun && p.action != .audit
        }
        let denies = applicable.filter { $0.action == .deny && $0.matches(facts) }
        if !denies.isEmpty { return (false, Set(denies.map(\.key)), .denyMatched) }
        let allows = applicable.filter { $0.action == .allow }
        if allows.isEmpty { return (true, [], .noAllowApplies) }
        let matched = allows.filter { $0.matches(facts) }
        if !matched.isEmpty { return (true, Set(matched.map(\.key)), .allowMatched) }
        return (false, [], .noAllowMatched)
    }

    @Test(arguments: 0..<20)
    func compiledAgreesWithThePlainEvaluator(seed: Int) throws {
        var r = Random(seed: UInt64(seed) &* 7919 &+ 1)
        let policies = (0..<(1 + r.below(12))).map { Self.policy(&r, index: $0) }
        let set = PolicySet(policies, rootNamespace: "istio-system")
        // One expectation over the 500 decisions: an `#expect` each is slow under a sanitizer.
        var disagreements: [String] = []
        for _ in 0..<500 {
            let source = r.chance(85) ? try SPIFFEID(trustDomain: r.pick(["cluster.local", "other.td"]), namespace: r.pick(Self.namespaces),
                                                     serviceAccount: r.pick(Self.accounts)) : nil
            let facts = ConnectionFacts(source: source, sourceIP: IPAddress(r.pick(Self.addresses))!,
                                        destinationIP: IPAddress(r.pick(Self.addresses))!, destinationPort: r.pick(Self.ports))
            let target = PolicyTarget(namespace: r.pick(Self.namespaces), labels: r.chance(50) ? ["app": r.pick(["ledger", "shop"])] : [:])
            let got = set.decide(facts, for: target)
            let want = Self.oracle(policies, root: "istio-system", facts, target)
            if got.allowed != want.allowed || got.basis != want.basis {
                disagreements.append("\(facts) → \(target): compiled \(got), plain \(want)")
            }
            if let decider = got.policy, !want.deciders.contains(decider) { disagreements.append("\(facts) → \(target): \(decider) did not decide") }
        }
        #expect(disagreements.isEmpty, "seed \(seed): \(disagreements.count) disagreements, first: \(disagreements.prefix(3))")
    }
}
