/// The outcome of authorizing one connection, naming what decided it.
/// Building one allocates nothing: the reason is derived when asked for.
public struct Decision: Sendable, Hashable, CustomStringConvertible {
    public enum Verdict: Sendable, Hashable { case allow, deny }

    public enum Basis: Sendable, Hashable {
        case denyMatched, allowMatched, noAllowApplies, noAllowMatched
    }

    public var verdict: Verdict
    /// `namespace/name` of the deciding policy; nil when no policy decided.
    public var policy: String?
    public var basis: Basis
    /// Dry-run and audit policies that matched (logged, never enforced).
    public var observed: [String]

    public init(verdict: Verdict, policy: String?, basis: Basis, observed: [String] = []) {
        self.verdict = verdict
        self.policy = policy
        self.basis = basis
        self.observed = observed
    }

    public var allowed: Bool { verdict == .allow }

    public var reason: String {
        switch basis {
        case .denyMatched: return "DENY policy \(policy ?? "?") matched"
        case .allowMatched: return "ALLOW policy \(policy ?? "?") matched"
        case .noAllowApplies: return "no ALLOW policy applies"
        case .noAllowMatched: return "no ALLOW policy matched"
        }
    }

    public var description: String { "\(allowed ? "allow" : "deny"): \(reason)" }
}
