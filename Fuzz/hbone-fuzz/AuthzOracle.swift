import HBONEAuthz
import HBONECore
import HBONEIdentity

/// Checks `PolicySet.decide` (compiled patterns in a byte arena, policies indexed by namespace)
/// against Istio's order written out plainly over `Policy.matches`, for connections made to hit
/// the policies' own principals, namespaces, addresses and ports; and that the verdict does not
/// depend on the order the policies were loaded in.
enum AuthzOracle {
    static let fallbackSource = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")

    static func check(_ policies: [Policy], rootNamespace: String) {
        let set = PolicySet(policies, rootNamespace: rootNamespace)
        let reversed = PolicySet(policies.reversed(), rootNamespace: rootNamespace)
        let sample = Array(policies.prefix(8))
        var targets = [PolicyTarget(namespace: "default", labels: [:])]
        for p in sample {
            let labels: [String: String] = if case let .workloadSelector(selector) = p.scope { selector } else { [:] }
            targets.append(PolicyTarget(namespace: p.namespace, labels: labels, policies: [p.key]))
        }
        var facts: [ConnectionFacts] = [
            ConnectionFacts(source: fallbackSource, sourceIP: IPAddress("10.0.0.1")!, destinationIP: IPAddress("10.0.0.2")!, destinationPort: 80),
            ConnectionFacts(source: nil, sourceIP: IPAddress("10.0.0.1")!, destinationIP: IPAddress("10.0.0.2")!, destinationPort: 80),
        ]
        for p in sample {
            for rule in p.rules.prefix(2) { for clause in rule.prefix(2) { for m in clause.prefix(2) { facts += hitting(m) } } }
        }
        for target in targets.prefix(9) {
            for f in facts.prefix(40) {
                let got = set.decide(f, for: target)
                let want = reference(policies, rootNamespace: rootNamespace, facts: f, target: target)
                precondition(got.verdict == want.verdict && got.basis == want.basis && got.policy == want.policy && got.observed == want.observed,
                             "compiled decision \(got) (observed \(got.observed)) differs from Istio's order \(want) (observed \(want.observed)) for \(f) on \(target)")
                let other = reversed.decide(f, for: target)
                precondition(other.verdict == got.verdict && other.basis == got.basis,
                             "the verdict depends on the policies' order: \(got) then, reversed, \(other)")
            }
        }
    }

    /// Istio's order over every policy: a matching DENY denies; else no applicable ALLOW allows;
    /// else a matching ALLOW allows; else deny. Root-namespace policies are looked at first.
    static func reference(_ policies: [Policy], rootNamespace: String, facts: ConnectionFacts, target: PolicyTarget) -> Decision {
        func isGlobal(_ p: Policy) -> Bool { p.scope == .global || p.namespace == rootNamespace }
        let ordered = policies.filter(isGlobal) + policies.filter { !isGlobal($0) && $0.namespace == target.namespace }
        var observed: [String] = [], allowApplies = false
        var deny: Policy?, allow: Policy?
        for p in ordered where applies(p, to: target) {
            if p.dryRun || p.action == .audit {
                if p.matches(facts) { observed.append("\(p.key)(\(p.dryRun ? "dry-run " : "")\(p.action.rawValue.lowercased()))") }
                continue
            }
            switch p.action {
            case .deny: if deny == nil && p.matches(facts) { deny = p }
            case .allow:
                allowApplies = true
                if allow == nil && p.matches(facts) { allow = p }
            case .audit: break
            }
        }
        if let deny { return Decision(verdict: .deny, policy: deny.key, basis: .denyMatched, observed: observed) }
        if !allowApplies { return Decision(verdict: .allow, policy: nil, basis: .noAllowApplies, observed: observed) }
        if let allow { return Decision(verdict: .allow, policy: allow.key, basis: .allowMatched, observed: observed) }
        return Decision(verdict: .deny, policy: nil, basis: .noAllowMatched, observed: observed)
    }

    static func applies(_ p: Policy, to target: PolicyTarget) -> Bool {
        switch p.scope {
        case .global, .namespace: true
        case .selectedByWorkloads: target.policies.contains(p.key)
        case let .workloadSelector(selector): selector.allSatisfy { target.labels[$0.key] == $0.value }
        }
    }

    /// Connections that satisfy the match's first value of each field (where one can be built),
    /// and the same with the source stripped.
    static func hitting(_ m: Match) -> [ConnectionFacts] {
        var source = fallbackSource
        if let ns = m.namespaces.first.flatMap(sample), let id = try? SPIFFEID(trustDomain: "cluster.local", namespace: ns, serviceAccount: "sa") {
            source = id
        }
        if let principal = m.principals.first.flatMap(sample) {
            if let id = try? SPIFFEID(parsing: "spiffe://" + principal) { source = id }
            else if let id = try? SPIFFEID(parsing: "spiffe://cluster.local" + principal) { source = id }
        }
        let sourceIP = m.sourceIps.first?.network ?? IPAddress("10.0.0.1")!
        let destinationIP = m.destinationIps.first?.network ?? IPAddress("10.0.0.2")!
        let port = m.destinationPorts.first ?? 80
        return [ConnectionFacts(source: source, sourceIP: sourceIP, destinationIP: destinationIP, destinationPort: port),
                ConnectionFacts(source: nil, sourceIP: sourceIP, destinationIP: destinationIP, destinationPort: port)]
    }

    /// A value the pattern matches.
    static func sample(_ s: StringMatch) -> String? {
        switch s {
        case let .exact(v): v
        case let .prefix(v): v + "x"
        case let .suffix(v): "x" + v
        case .presence: nil
        }
    }
}
