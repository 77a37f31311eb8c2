import HBONECore

/// An authorization policy in ztunnel's shape: rules → clauses → matches.
/// A policy matches when any rule matches; a rule when all its clauses match; a clause when any of
/// its matches matches; a match when all its fields hold.
public struct Policy: Sendable, Hashable {
    public enum Scope: Sendable, Hashable {
        case global
        case namespace
        case workloadSelector([String: String])
        /// Applies to the workloads that name it (`PolicyTarget.policies`): xDS's WORKLOAD_SELECTOR,
        /// where istiod resolves the selector and lists the policies on each workload.
        case selectedByWorkloads
    }

    public enum Action: String, Sendable, Hashable { case allow = "Allow", deny = "Deny", audit = "Audit" }

    public let name: String
    public let namespace: String
    public var scope: Scope
    public var action: Action
    /// `istio.io/dry-run: "true"`: evaluated and logged, never enforced.
    public var dryRun: Bool
    public var rules: [[[Match]]]
    /// Why parts of this policy cannot be judged at L4 (shown as warnings).
    public var warnings: [String]

    /// `namespace/name`, built once (decisions carry it without allocating).
    public let key: String

    public init(name: String, namespace: String, scope: Scope, action: Action, dryRun: Bool = false, rules: [[[Match]]], warnings: [String] = []) {
        self.key = "\(namespace)/\(name)"
        self.name = name
        self.namespace = namespace
        self.scope = scope
        self.action = action
        self.dryRun = dryRun
        self.rules = rules
        self.warnings = warnings
    }


    /// No rules: matches nothing (so an empty ALLOW denies everything it applies to).
    public func matches(_ facts: ConnectionFacts) -> Bool {
        // Index loops keep elements borrowed in place (iterating by value would retain each array).
        for r in rules.indices {
            var all = true
            for c in rules[r].indices {
                var any = false
                for m in rules[r][c].indices where rules[r][c][m].matches(facts, action: action) {
                    any = true
                    break
                }
                if !any { all = false; break }
            }
            if all { return true }
        }
        return false
    }

    /// Whether the policy applies to this workload (the namespace is the caller's to check).
    func selects(_ target: PolicyTarget) -> Bool {
        switch scope {
        case .global, .namespace: return true
        case .selectedByWorkloads: return target.policies.contains(key)
        case let .workloadSelector(selector):
            for (k, v) in selector where target.labels[k] != v { return false }
            return true
        }
    }
}

/// One ztunnel RbacMatch: fields AND-ed, values of one field OR-ed, `not` lists must match none.
public struct Match: Sendable, Hashable {
    public var namespaces: [StringMatch] = []
    public var notNamespaces: [StringMatch] = []
    public var principals: [StringMatch] = []
    public var notPrincipals: [StringMatch] = []
    public var sourceIps: [CIDR] = []
    public var notSourceIps: [CIDR] = []
    public var destinationIps: [CIDR] = []
    public var notDestinationIps: [CIDR] = []
    public var destinationPorts: [UInt16] = []
    public var notDestinationPorts: [UInt16] = []
    /// HTTP-only fields this match used. They cannot be judged at L4: such a match never holds in an
    /// ALLOW (or AUDIT) policy; in a DENY policy they count as satisfied and only the L4 fields are
    /// judged (fail closed; the reference lets such a DENY match nothing).
    public var unjudgeable: [String] = []

    public init() {}

    public func matches(_ facts: ConnectionFacts, action: Policy.Action) -> Bool {
        if !unjudgeable.isEmpty && action != .deny { return false }
        let namespace = facts.sourceNamespace
        if !namespaces.isEmpty && !namespaces.contains(where: { $0.matches(namespace) }) { return false }
        if notNamespaces.contains(where: { $0.matches(namespace) }) { return false }
        // Written once per rule, not once per pattern (the facts no longer keep it).
        let principal = principals.isEmpty && notPrincipals.isEmpty ? nil : facts.principal
        if !principals.isEmpty && !principals.contains(where: { $0.matches(principal) }) { return false }
        if notPrincipals.contains(where: { $0.matches(principal) }) { return false }
        if !sourceIps.isEmpty && !sourceIps.contains(where: { $0.contains(facts.sourceIP) }) { return false }
        if notSourceIps.contains(where: { $0.contains(facts.sourceIP) }) { return false }
        if !destinationIps.isEmpty && !destinationIps.contains(where: { $0.contains(facts.destinationIP) }) { return false }
        if notDestinationIps.contains(where: { $0.contains(facts.destinationIP) }) { return false }
        if !destinationPorts.isEmpty && !destinationPorts.contains(facts.destinationPort) { return false }
        if notDestinationPorts.contains(facts.destinationPort) { return false }
        return true
    }
}
