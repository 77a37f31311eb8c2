/// Every policy, indexed so one decision looks only at those that can apply to the destination:
/// the root namespace's (global), the destination namespace's, selectors in that namespace.
public struct PolicySet: Sendable {
    public let rootNamespace: String
    public let policies: [Policy]
    private var byNamespace: [String: [Int]] = [:]
    private var global: [Int] = []

    public init(_ policies: [Policy], rootNamespace: String = "istio-system") {
        self.rootNamespace = rootNamespace
        self.policies = policies
        for (i, p) in policies.enumerated() {
            if p.scope == .global || (p.namespace == rootNamespace && p.scope == .namespace) {
                global.append(i)
            } else {
                byNamespace[p.namespace, default: []].append(i)
            }
        }
    }

    public var count: Int { policies.count }

    @inline(__always)
    private func applies(_ p: Policy, to target: PolicyTarget) -> Bool {
        switch p.scope {
        case .global: return true
        case .namespace: return p.namespace == rootNamespace || p.namespace == target.namespace
        case let .workloadSelector(labels):
            guard p.namespace == target.namespace || p.namespace == rootNamespace else { return false }
            for (k, v) in labels where target.labels[k] != v { return false }
            return true
        }
    }

    /// Istio order: a matching DENY denies; else no applicable ALLOW allows; else a matching ALLOW
    /// allows; else deny. Dry-run and AUDIT policies are only recorded in `observed`.
    public func decide(_ facts: ConnectionFacts, for target: PolicyTarget) -> Decision {
        var observed: [String] = []
        var allowApplies = false
        var allowMatch: Policy? = nil
        var denyMatch: Policy? = nil
        func consider(_ indices: [Int]) {
            for i in indices {
                let p = policies[i]
                guard applies(p, to: target) else { continue }
                if p.dryRun || p.action == .audit {
                    if p.matches(facts) { observed.append("\(p.key)(\(p.dryRun ? "dry-run " : "")\(p.action.rawValue.lowercased()))") }
                    continue
                }
                switch p.action {
                case .deny:
                    if denyMatch == nil && p.matches(facts) { denyMatch = p }
                case .allow:
                    allowApplies = true
                    if allowMatch == nil && p.matches(facts) { allowMatch = p }
                case .audit:
                    break
                }
            }
        }
        consider(global)
        if let local = byNamespace[target.namespace] { consider(local) }
        if let p = denyMatch {
            return Decision(verdict: .deny, policy: p.key, reason: "DENY policy \(p.key) matched", observed: observed)
        }
        if !allowApplies {
            return Decision(verdict: .allow, policy: nil, reason: "no ALLOW policy applies", observed: observed)
        }
        if let p = allowMatch {
            return Decision(verdict: .allow, policy: p.key, reason: "ALLOW policy \(p.key) matched", observed: observed)
        }
        return Decision(verdict: .deny, policy: nil, reason: "no ALLOW policy matched", observed: observed)
    }
}
