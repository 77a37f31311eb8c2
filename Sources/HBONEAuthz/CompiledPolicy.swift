#if canImport(Glibc)
import Glibc
#endif
import HBONECore

/// A policy compiled for evaluation: classes (no struct copies on access) whose string patterns
/// live in one byte arena addressed by plain ranges, so a decision touches almost no reference
/// counts. Built once per policy set; immutable, shared by every loop.
final class CompiledPolicy: @unchecked Sendable {
    let key: String
    let action: Policy.Action
    let dryRun: Bool
    let selector: [(String, String)]?
    /// xDS WORKLOAD_SELECTOR: applies where the workload names it.
    let selectedByWorkloads: Bool
    /// Owns the matches; evaluation walks the unretained copies below.
    private let owned: [CompiledMatch]
    /// Rules flattened: each rule is a range of `clauses`, each clause a range of `matches`.
    private let ruleEnds: [Int]
    private let clauseEnds: [Int]
    private let matchRefs: [Unmanaged<CompiledMatch>]

    init(_ p: Policy) {
        key = p.key
        action = p.action
        dryRun = p.dryRun
        if case let .workloadSelector(labels) = p.scope { selector = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } } else { selector = nil }
        selectedByWorkloads = p.scope == .selectedByWorkloads
        var owned: [CompiledMatch] = [], ruleEnds: [Int] = [], clauseEnds: [Int] = []
        for rule in p.rules {
            for clause in rule {
                owned += clause.map(CompiledMatch.init)
                clauseEnds.append(owned.count)
            }
            ruleEnds.append(clauseEnds.count)
        }
        self.owned = owned
        self.ruleEnds = ruleEnds
        self.clauseEnds = clauseEnds
        // Unretained references stay valid: `owned` keeps every match alive as long as this policy.
        matchRefs = owned.map { Unmanaged.passUnretained($0) }
    }

    @inline(__always)
    func selects(_ target: PolicyTarget) -> Bool {
        if selectedByWorkloads { return target.policies.contains(key) }
        guard let selector else { return true }
        for (k, v) in selector where target.labels[k] != v { return false }
        return true
    }

    /// No rules: matches nothing. A rule with no clauses matches everything.
    func matches(_ facts: CompiledFacts) -> Bool {
        let action = self.action
        return ruleEnds.withUnsafeBufferPointer { rules in
            clauseEnds.withUnsafeBufferPointer { clauses in
                matchRefs.withUnsafeBufferPointer { refs in
                    var clauseStart = 0
                    for r in 0..<rules.count {
                        var all = true
                        let clauseEnd = rules[r]
                        var c = clauseStart
                        while c < clauseEnd {
                            var any = false
                            var m = c == 0 ? 0 : clauses[c - 1]
                            while m < clauses[c] {
                                if refs[m]._withUnsafeGuaranteedRef({ $0.matches(facts, action: action) }) { any = true; break }
                                m += 1
                            }
                            if !any { all = false; break }
                            c += 1
                        }
                        if all { return true }
                        clauseStart = clauseEnd
                    }
                    return false
                }
            }
        }
    }
}

/// One string pattern: kind and a range of the arena.
struct Pattern {
    enum Kind: UInt8 { case exact, prefix, suffix, presence }
    let kind: Kind
    let start: Int
    let count: Int
}

/// Facts with the principal's and namespace's bytes at hand (borrowed for one decision).
struct CompiledFacts {
    let principal: UnsafeBufferPointer<UInt8>?
    let namespace: UnsafeBufferPointer<UInt8>?
    let sourceIP: IPAddress
    let destinationIP: IPAddress
    let port: UInt16
}

final class CompiledMatch: @unchecked Sendable {
    let unjudgeable: Bool
    let arena: [UInt8]
    let namespaces: [Pattern], notNamespaces: [Pattern], principals: [Pattern], notPrincipals: [Pattern]
    let sourceIps: [CIDR], notSourceIps: [CIDR], destinationIps: [CIDR], notDestinationIps: [CIDR]
    let ports: [UInt16], notPorts: [UInt16]

    init(_ m: Match) {
        var arena: [UInt8] = []
        func patterns(_ list: [StringMatch]) -> [Pattern] {
            list.map { s in
                let (kind, text): (Pattern.Kind, String)
                switch s {
                case let .exact(t): (kind, text) = (.exact, t)
                case let .prefix(t): (kind, text) = (.prefix, t)
                case let .suffix(t): (kind, text) = (.suffix, t)
                case .presence: (kind, text) = (.presence, "")
                }
                let start = arena.count
                arena.append(contentsOf: text.utf8)
                return Pattern(kind: kind, start: start, count: text.utf8.count)
            }
        }
        unjudgeable = !m.unjudgeable.isEmpty
        namespaces = patterns(m.namespaces)
        notNamespaces = patterns(m.notNamespaces)
        principals = patterns(m.principals)
        notPrincipals = patterns(m.notPrincipals)
        self.arena = arena
        sourceIps = m.sourceIps
        notSourceIps = m.notSourceIps
        destinationIps = m.destinationIps
        notDestinationIps = m.notDestinationIps
        ports = m.destinationPorts
        notPorts = m.notDestinationPorts
    }

    func matches(_ f: CompiledFacts, action: Policy.Action) -> Bool {
        // HTTP-only fields: never in ALLOW/AUDIT; in DENY they count as satisfied (fail closed).
        if unjudgeable && action != .deny { return false }
        return arena.withUnsafeBufferPointer { a in
            if !namespaces.isEmpty && !CompiledMatch.any(namespaces, a, f.namespace) { return false }
            if CompiledMatch.any(notNamespaces, a, f.namespace) { return false }
            if !principals.isEmpty && !CompiledMatch.any(principals, a, f.principal) { return false }
            if CompiledMatch.any(notPrincipals, a, f.principal) { return false }
            if !sourceIps.isEmpty && !sourceIps.contains(where: { $0.contains(f.sourceIP) }) { return false }
            if notSourceIps.contains(where: { $0.contains(f.sourceIP) }) { return false }
            if !destinationIps.isEmpty && !destinationIps.contains(where: { $0.contains(f.destinationIP) }) { return false }
            if notDestinationIps.contains(where: { $0.contains(f.destinationIP) }) { return false }
            if !ports.isEmpty && !ports.contains(f.port) { return false }
            if notPorts.contains(f.port) { return false }
            return true
        }
    }

    /// Istio: a pattern never matches a missing or empty value.
    @inline(__always)
    static func any(_ patterns: [Pattern], _ arena: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>?) -> Bool {
        guard let value, value.count > 0 else { return false }
        for p in patterns {
            switch p.kind {
            case .presence: return true
            case .exact: if value.count == p.count && same(value, 0, arena, p) { return true }
            case .prefix: if value.count >= p.count && same(value, 0, arena, p) { return true }
            case .suffix: if value.count >= p.count && same(value, value.count - p.count, arena, p) { return true }
            }
        }
        return false
    }

    @inline(__always)
    static func same(_ value: UnsafeBufferPointer<UInt8>, _ offset: Int, _ arena: UnsafeBufferPointer<UInt8>, _ p: Pattern) -> Bool {
        p.count == 0 || memcmp(value.baseAddress! + offset, arena.baseAddress! + p.start, p.count) == 0
    }
}
