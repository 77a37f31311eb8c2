/// Istio's string matching: `*` any non-empty value, `prefix*`, `*suffix`, else exact.
public enum StringMatch: Hashable, Sendable, CustomStringConvertible {
    case exact(String)
    case prefix(String)
    case suffix(String)
    case presence

    public init(istio pattern: String) {
        if pattern == "*" {
            self = .presence
        } else if pattern.hasSuffix("*") {
            self = .prefix(String(pattern.dropLast()))
        } else if pattern.hasPrefix("*") {
            self = .suffix(String(pattern.dropFirst()))
        } else {
            self = .exact(pattern)
        }
    }

    @inline(__always)
    public func matches(_ value: String?) -> Bool {
        guard let value, !value.isEmpty else { return false }
        switch self {
        case let .exact(s): return value == s
        case let .prefix(s): return value.hasPrefix(s)
        case let .suffix(s): return value.hasSuffix(s)
        case .presence: return true
        }
    }

    public var description: String {
        switch self {
        case let .exact(s): return s
        case let .prefix(s): return s + "*"
        case let .suffix(s): return "*" + s
        case .presence: return "*"
        }
    }
}
