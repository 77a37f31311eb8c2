/// The outcome of authorizing one connection, naming what decided it.
public struct Decision: Sendable, Hashable, CustomStringConvertible {
    public enum Verdict: Sendable, Hashable { case allow, deny }

    public var verdict: Verdict
    /// `namespace/name` of the deciding policy; nil when no policy decided.
    public var policy: String?
    public var reason: String
    /// Dry-run and audit policies that matched (logged, never enforced).
    public var observed: [String]

    public var allowed: Bool { verdict == .allow }

    public var description: String {
        "\(allowed ? "allow" : "deny"): \(reason)"
    }

    public static let noPolicies = Decision(verdict: .allow, policy: nil, reason: "no ALLOW policy applies", observed: [])
}
