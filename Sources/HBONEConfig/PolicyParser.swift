import HBONECore
import HBONEAuthz

/// Reads policies in ztunnel's LocalConfig shape (rules → clauses → matches).
enum PolicyParser {
    static func localConfig(_ r: YAMLReader) throws(ConfigError) -> Policy {
        let f = try r.fields(allowed: ["name", "namespace", "scope", "action", "rules", "dryRun", "groups", "selector"])
        guard let name = try f["name"]?.nonEmptyString() else { throw r.error("missing name") }
        let namespace = try f["namespace"]?.string() ?? ""
        var scope = Policy.Scope.namespace
        if let s = f["scope"] {
            switch try s.string() {
            case "Global", "GLOBAL": scope = .global
            case "Namespace", "NAMESPACE": scope = .namespace
            case "WorkloadSelector", "WORKLOAD_SELECTOR":
                var labels: [String: String] = [:]
                if let sel = f["selector"] {
                    let sf = try sel.fields(allowed: ["matchLabels"])
                    for (k, v) in try sf["matchLabels"]?.mapping() ?? [] { labels[k] = try v.string() }
                }
                scope = .workloadSelector(labels)
            default: throw s.error("must be Global, Namespace or WorkloadSelector")
            }
        }
        var action = Policy.Action.allow
        if let a = f["action"] {
            switch try a.string().lowercased() {
            case "allow": action = .allow
            case "deny": action = .deny
            case "audit": action = .audit
            default: throw a.error("must be Allow, Deny or Audit")
            }
        }
        var rules: [[[Match]]] = []
        var warnings: [String] = []
        for rule in try f["rules"].sequence() {
            var clauses: [[Match]] = []
            for clause in try rule.sequence() {
                var matches: [Match] = []
                for m in try clause.sequence() { matches.append(try match(m, warnings: &warnings)) }
                clauses.append(matches)
            }
            rules.append(clauses)
        }
        var policy = Policy(name: name, namespace: namespace, scope: scope, action: action,
                            dryRun: try f["dryRun"]?.bool() ?? false, rules: rules)
        policy.warnings += warnings
        return policy
    }

    static func match(_ r: YAMLReader, warnings: inout [String]) throws(ConfigError) -> Match {
        let f = try r.fields(allowed: ["namespaces", "notNamespaces", "principals", "notPrincipals", "sourceIps", "notSourceIps",
                                       "destinationIps", "notDestinationIps", "destinationPorts", "notDestinationPorts", "serviceAccounts", "notServiceAccounts"])
        var m = Match()
        func strings(_ key: String, principal: Bool = false) throws(ConfigError) -> [StringMatch] {
            var out: [StringMatch] = []
            for v in try f[key].sequence() {
                let match = try stringMatch(v)
                switch match {
                case let .exact(t), let .prefix(t), let .suffix(t):
                    if let w = PolicyLint.pattern(t, at: v.path, principal: principal) { warnings.append(w) }
                case .presence: break
                }
                out.append(match)
            }
            return out
        }
        func cidrs(_ key: String) throws(ConfigError) -> [CIDR] {
            var out: [CIDR] = []
            for v in try f[key].sequence() {
                let s = try v.string()
                guard let c = CIDR(s) else { throw v.error("\"\(s)\" is not an IP block") }
                if let w = PolicyLint.cidr(s, c, at: v.path) { warnings.append(w) }
                out.append(c)
            }
            return out
        }
        func ports(_ key: String) throws(ConfigError) -> [UInt16] {
            var out: [UInt16] = []
            for v in try f[key].sequence() {
                // LocalConfig ports are numbers (ztunnel refuses "80"); Istio's YAML policies take strings.
                if v.isQuoted {
                    throw v.error("\"\(v.node.string)\" is a string; ports are numbers here")
                }
                out.append(try v.port())
            }
            return out
        }
        /// ztunnel's `{namespace, serviceAccount}` matches, as the principal suffix they stand for.
        func serviceAccounts(_ key: String) throws(ConfigError) -> [StringMatch] {
            var out: [StringMatch] = []
            for v in try f[key].sequence() {
                let sf = try v.fields(allowed: ["namespace", "serviceAccount"])
                guard let ns = try sf["namespace"]?.nonEmptyString(), let sa = try sf["serviceAccount"]?.nonEmptyString(),
                      let match = PolicyLint.serviceAccount("\(ns)/\(sa)") else {
                    throw v.error("a service account match needs namespace and serviceAccount")
                }
                out.append(match)
            }
            return out
        }
        m.namespaces = try strings("namespaces")
        m.notNamespaces = try strings("notNamespaces")
        m.principals = try strings("principals", principal: true) + serviceAccounts("serviceAccounts")
        m.notPrincipals = try strings("notPrincipals", principal: true) + serviceAccounts("notServiceAccounts")
        m.sourceIps = try cidrs("sourceIps")
        m.notSourceIps = try cidrs("notSourceIps")
        m.destinationIps = try cidrs("destinationIps")
        m.notDestinationIps = try cidrs("notDestinationIps")
        m.destinationPorts = try ports("destinationPorts")
        m.notDestinationPorts = try ports("notDestinationPorts")
        return m
    }

    /// A plain string uses Istio's glob rules; ztunnel's `{Exact: x}`/`{Prefix: x}`/`{Suffix: x}`/`{Presence: {}}` too.
    static func stringMatch(_ r: YAMLReader) throws(ConfigError) -> StringMatch {
        if r.isScalar { return StringMatch(istio: try r.string()) }
        let entries = try r.mapping(allowed: ["Exact", "Prefix", "Suffix", "Presence"])
        guard entries.count == 1, let (k, v) = entries.first else { throw r.error("expected exactly one of Exact, Prefix, Suffix, Presence") }
        switch k {
        case "Exact": return .exact(try v.string())
        case "Prefix": return .prefix(try v.string())
        case "Suffix": return .suffix(try v.string())
        default: return .presence
        }
    }
}
