#if canImport(Glibc)
import Glibc
#endif

/// Istio's string matching: `*` any non-empty value, `prefix*`, `*suffix`, else exact.
public enum StringMatch: Hashable, Sendable, CustomStringConvertible {
    case exact(String)
    case prefix(String)
    case suffix(String)
    case presence

    /// A service account as a principal match: `<any trust domain>/ns/<namespace>/sa/<name>` (xDS
    /// `ServiceAccountMatch`, Istio's `serviceAccounts`); nil when a part is empty or holds a `/`.
    public static func serviceAccount(namespace: String, name: String) -> StringMatch? {
        guard !namespace.isEmpty, !name.isEmpty, !namespace.utf8.contains(UInt8(ascii: "/")), !name.utf8.contains(UInt8(ascii: "/")) else { return nil }
        return .suffix("/ns/\(namespace)/sa/\(name)")
    }

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

    /// Compares UTF-8 bytes, not Unicode canonical equivalence: identities must match exactly
    /// as written (and byte comparison is what makes a decision take nanoseconds, not microseconds).
    @inline(__always)
    public func matches(_ value: String?) -> Bool {
        guard let value, !value.isEmpty else { return false }
        switch self {
        case let .exact(s): return StringMatch.bytes(value, s) { v, p in v.count == p.count && StringMatch.equal(v, 0, p) }
        case let .prefix(s): return StringMatch.bytes(value, s) { v, p in v.count >= p.count && StringMatch.equal(v, 0, p) }
        case let .suffix(s): return StringMatch.bytes(value, s) { v, p in v.count >= p.count && StringMatch.equal(v, v.count - p.count, p) }
        case .presence: return true
        }
    }

    @inline(__always)
    static func bytes(_ a: String, _ b: String, _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        if let r = a.utf8.withContiguousStorageIfAvailable({ va in b.utf8.withContiguousStorageIfAvailable({ vb in body(va, vb) }) }), let r {
            return r
        }
        return Array(a.utf8).withUnsafeBufferPointer { va in Array(b.utf8).withUnsafeBufferPointer { vb in body(va, vb) } }
    }

    @inline(__always)
    static func equal(_ v: UnsafeBufferPointer<UInt8>, _ offset: Int, _ p: UnsafeBufferPointer<UInt8>) -> Bool {
        if p.isEmpty { return true }
        return memcmp(v.baseAddress! + offset, p.baseAddress!, p.count) == 0
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
