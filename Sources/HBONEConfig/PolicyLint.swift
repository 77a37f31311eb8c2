import HBONECore
import HBONEAuthz

/// Values in a policy that parse but cannot mean what their author meant: each gets a warning with
/// its path (a silent mismatch in an authorization policy is a hole or an outage nobody sees).
enum PolicyLint {
    /// A principal or namespace pattern. Istio principals are `<trust domain>/ns/<ns>/sa/<sa>`,
    /// without `spiffe://`; `*` is a wildcard only at the start or the end.
    static func pattern(_ text: String, at path: String, principal: Bool) -> String? {
        if principal && text.hasPrefix("spiffe://") {
            return "\(path): \"\(text.prefix(80))\" can never match: principals are written without spiffe:// (e.g. cluster.local/ns/default/sa/app)"
        }
        let inner = text.count > 2 ? text.dropFirst().dropLast() : ""
        if inner.contains("*") {
            return "\(path): \"\(text.prefix(80))\": * is a wildcard only at the start or the end; here it is matched literally"
        }
        return nil
    }

    /// An IP block written with host bits (`10.0.0.1/8`) matches its whole network (`10.0.0.0/8`).
    static func cidr(_ text: String, _ cidr: CIDR, at path: String) -> String? {
        guard let slash = text.firstIndex(of: "/"), let written = IPAddress(text[..<slash]), written != cidr.network else { return nil }
        return "\(path): \"\(text)\" has host bits set; it matches all of \(cidr)"
    }

    /// A service-account match (`<namespace>/<name>`) as the principal suffix it stands for.
    static func serviceAccount(_ text: String) -> StringMatch? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !text.contains("*") else { return nil }
        return StringMatch.serviceAccount(namespace: String(parts[0]), name: String(parts[1]))
    }
}
