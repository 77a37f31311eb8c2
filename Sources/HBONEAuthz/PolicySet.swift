import HBONEIdentity

/// Every policy, indexed so one decision looks only at those that can apply to the destination:
/// the root namespace's (global), the destination namespace's, selectors in that namespace.
public struct PolicySet: Sendable {
    public let rootNamespace: String
    public let policies: [Policy]
    private let compiled: [CompiledPolicy]
    private var byNamespace: [String: [CompiledPolicy]] = [:]
    private var global: [CompiledPolicy] = []

    public init(_ policies: [Policy], rootNamespace: String = "istio-system") {
        self.rootNamespace = rootNamespace
        self.policies = policies
        compiled = policies.map(CompiledPolicy.init)
        for (p, c) in zip(policies, compiled) {
            // The root namespace's policies apply to every workload (selectors still select).
            if p.scope == .global || p.namespace == rootNamespace {
                global.append(c)
            } else {
                byNamespace[p.namespace, default: []].append(c)
            }
        }
    }

    public var count: Int { policies.count }

    /// Istio order: a matching DENY denies; else no applicable ALLOW allows; else a matching ALLOW
    /// allows; else deny. Dry-run and AUDIT policies are only recorded in `observed`.
    /// Looks only at global policies and the destination namespace's; allocates nothing unless a
    /// dry-run or audit policy matched.
    public func decide(_ facts: ConnectionFacts, for target: PolicyTarget) -> Decision {
        let namespace = facts.source?.namespace
        return Self.principalBytes(facts.source) { principal in
            Self.bytes(namespace) { ns in
                let f = CompiledFacts(principal: principal, namespace: ns, sourceIP: facts.sourceIP,
                                      destinationIP: facts.destinationIP, port: facts.destinationPort)
                var scan = Scan()
                scan.consider(global, f, target)
                if let local = byNamespace[target.namespace] { scan.consider(local, f, target) }
                if let p = scan.denyMatch {
                    return Decision(verdict: .deny, policy: p.key, basis: .denyMatched, observed: scan.observed)
                }
                if !scan.allowApplies {
                    return Decision(verdict: .allow, policy: nil, basis: .noAllowApplies, observed: scan.observed)
                }
                if let p = scan.allowMatch {
                    return Decision(verdict: .allow, policy: p.key, basis: .allowMatched, observed: scan.observed)
                }
                return Decision(verdict: .deny, policy: nil, basis: .noAllowMatched, observed: scan.observed)
            }
        }
    }

    /// The principal's UTF-8 bytes of `id`, read in place, for the duration of `body` (nil stays nil).
    @inline(__always)
    static func principalBytes<R>(_ id: SPIFFEID?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let id else { return body(nil) }
        return id.withPrincipalBytes { body($0) }
    }

    /// The UTF-8 bytes of a string for the duration of `body` (nil stays nil).
    @inline(__always)
    static func bytes<R>(_ s: String?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let s else { return body(nil) }
        if let r = s.utf8.withContiguousStorageIfAvailable({ body($0) }) { return r }
        return Array(s.utf8).withUnsafeBufferPointer { body($0) }
    }

    private struct Scan {
        var observed: [String] = []
        var allowApplies = false
        var allowMatch: CompiledPolicy? = nil
        var denyMatch: CompiledPolicy? = nil

        mutating func consider(_ list: [CompiledPolicy], _ facts: CompiledFacts, _ target: PolicyTarget) {
            for p in list {
                guard p.selects(target) else { continue }
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
    }
}
