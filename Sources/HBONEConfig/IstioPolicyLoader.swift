import Foundation
import HBONECore
import HBONEAuthz

/// Reads Istio `AuthorizationPolicy` resources (security.istio.io/v1 and v1beta1) as
/// `kubectl get authorizationpolicies -A -o yaml` prints them: single documents, multi-document
/// files and `kind: List`, from files or directories. Translates each into ztunnel's shape.
public enum IstioPolicyLoader {
    public struct Result: Sendable {
        public var policies: [Policy] = []
        /// Why some resources or fields were skipped or judged conservatively.
        public var warnings: [String] = []
        /// Where each policy was read, by `namespace/name`.
        public var definedAt: [String: (file: String, line: Int?)] = [:]
    }

    /// Loads every `.yaml`/`.yml` file in `paths` (a directory is read non-recursively, sorted).
    public static func load(paths: [String], rootNamespace: String) throws(ConfigError) -> Result {
        try load(paths: paths, rootNamespace: rootNamespace, listing: FileManager.default.contentsOfDirectory(atPath:))
    }

    /// The same with the directory listing given (tests: a listing that fails, which root cannot provoke).
    static func load(paths: [String], rootNamespace: String, listing: (String) throws -> [String]) throws(ConfigError) -> Result {
        var result = Result()
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw ConfigError(file: path, line: nil, path: "", reason: "no such file or directory")
            }
            var files = [path]
            if isDirectory.boolValue {
                // A directory that cannot be listed is an error, not an empty set of policies: that
                // would drop every DENY policy and open what they close.
                let names: [String]
                do { names = try listing(path) } catch {
                    throw ConfigError(file: path, line: nil, path: "", reason: "cannot list the policy directory: \(error.localizedDescription)")
                }
                files = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { path + "/" + $0 }
            }
            for file in files {
                guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                    throw ConfigError(file: file, line: nil, path: "", reason: "cannot read the file as UTF-8 text")
                }
                try parse(yaml: text, file: file, rootNamespace: rootNamespace, into: &result)
            }
        }
        return result
    }

    public static func parse(yaml text: String, file: String, rootNamespace: String) throws(ConfigError) -> Result {
        var result = Result()
        try parse(yaml: text, file: file, rootNamespace: rootNamespace, into: &result)
        return result
    }

    static func parse(yaml text: String, file: String, rootNamespace: String, into result: inout Result) throws(ConfigError) {
        let documents = try YAMLReader.documents(yaml: text, file: file)
        for (i, doc) in documents.enumerated() {
            let r = documents.count > 1 ? doc.at("document[\(i)]") : doc
            if r.isNull { continue }
            try resource(r, rootNamespace: rootNamespace, into: &result)
        }
    }

    private static func resource(_ r: YAMLReader, rootNamespace: String, into result: inout Result) throws(ConfigError) {
        let f = try r.fields(allowed: ["apiVersion", "kind", "metadata", "spec", "items", "status"])
        let kind = try f["kind"]?.string() ?? ""
        if kind == "List" || kind.hasSuffix("List") {
            for item in try f["items"].sequence() { try resource(item, rootNamespace: rootNamespace, into: &result) }
            return
        }
        let apiVersion = try f["apiVersion"]?.string() ?? ""
        guard kind == "AuthorizationPolicy" else {
            result.warnings.append("\(r.file): \(r.path.isEmpty ? "" : r.path + ": ")skipped \(kind.isEmpty ? "a document without kind" : kind): not an AuthorizationPolicy")
            return
        }
        guard apiVersion == "security.istio.io/v1" || apiVersion == "security.istio.io/v1beta1" else {
            throw (f["apiVersion"] ?? r).error("apiVersion must be security.istio.io/v1 or v1beta1, got \"\(apiVersion)\"")
        }
        guard let metadata = f["metadata"] else { throw r.error("missing metadata") }
        let m = try metadata.fields(allowed: ["name", "namespace", "annotations", "labels", "uid", "resourceVersion", "generation",
                                              "creationTimestamp", "managedFields", "selfLink", "ownerReferences", "finalizers"])
        guard let name = try m["name"]?.nonEmptyString() else { throw metadata.error("missing name") }
        let namespace = try m["namespace"]?.nonEmptyString() ?? "default"
        var dryRun = false
        if let annotations = m["annotations"] {
            for (k, v) in try annotations.mapping() where k == "istio.io/dry-run" {
                dryRun = try v.string().lowercased() == "true"
            }
        }
        let key = "\(namespace)/\(name)"
        // Kubernetes holds one policy per namespace and name (a second apply replaces the first);
        // applying both would grant the union of two ALLOW policies. Which one is meant is the
        // operator's call, so say where both are.
        if let first = result.definedAt[key] {
            throw metadata.error("AuthorizationPolicy \(key) is also defined at \(first.file):\(first.line.map(String.init) ?? "?")")
        }
        result.definedAt[key] = (r.file, r.line)
        let spec = try f["spec"]?.fields(allowed: ["selector", "targetRef", "targetRefs", "action", "provider", "rules"]) ?? [:]
        if spec["targetRef"] != nil || spec["targetRefs"] != nil {
            result.warnings.append("\(key): targets a waypoint or gateway (targetRef), not enforced by a node proxy")
            return
        }
        var action = Policy.Action.allow
        if let a = spec["action"] {
            switch try a.string() {
            case "ALLOW": action = .allow
            case "DENY": action = .deny
            case "AUDIT": action = .audit
            case "CUSTOM":
                result.warnings.append("\(key): action CUSTOM (external authorization) cannot be enforced at L4; policy skipped")
                return
            default: throw a.error("action must be ALLOW, DENY, AUDIT or CUSTOM")
            }
        }
        var scope: Policy.Scope = namespace == rootNamespace ? .global : .namespace
        if let selector = spec["selector"] {
            let s = try selector.fields(allowed: ["matchLabels"])
            var labels: [String: String] = [:]
            for (k, v) in try s["matchLabels"]?.mapping() ?? [] { labels[k] = try v.string() }
            scope = .workloadSelector(labels)
        }
        var warnings: [String] = []
        var rules: [[[Match]]] = []
        for rule in try spec["rules"].sequence() {
            rules.append(try translate(rule: rule, action: action, policy: key, warnings: &warnings))
        }
        result.warnings += warnings
        result.policies.append(Policy(name: name, namespace: namespace, scope: scope, action: action, dryRun: dryRun, rules: rules, warnings: warnings))
    }

    /// One Istio rule → clauses: `from` (its sources OR-ed), `to` (its operations OR-ed), and one
    /// clause per `when` condition; all clauses must hold.
    private static func translate(rule: YAMLReader, action: Policy.Action, policy: String, warnings: inout [String]) throws(ConfigError) -> [[Match]] {
        let f = try rule.fields(allowed: ["from", "to", "when"])
        var clauses: [[Match]] = []
        func note(_ fields: [String], at r: YAMLReader) {
            guard !fields.isEmpty else { return }
            let effect = action == .deny ? "treated as matching (fail closed): the DENY applies on its L4 fields alone" : "this rule never matches at L4"
            warnings.append("\(policy): \(r.path): HTTP-only field(s) \(fields.joined(separator: ", ")) cannot be judged by a node proxy; \(effect)")
        }
        if let from = f["from"] {
            var clause: [Match] = []
            for entry in try from.sequence() {
                let e = try entry.fields(allowed: ["source"])
                guard let source = e["source"] else { throw entry.error("missing source") }
                let s = try source.fields(allowed: ["principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
                                                    "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
                                                    "serviceAccounts", "notServiceAccounts"])
                var m = Match()
                m.principals = try strings(s["principals"], principal: true, policy: policy, warnings: &warnings)
                    + serviceAccounts(s["serviceAccounts"])
                m.notPrincipals = try strings(s["notPrincipals"], principal: true, policy: policy, warnings: &warnings)
                    + serviceAccounts(s["notServiceAccounts"])
                m.namespaces = try strings(s["namespaces"], policy: policy, warnings: &warnings)
                m.notNamespaces = try strings(s["notNamespaces"], policy: policy, warnings: &warnings)
                m.sourceIps = try cidrs(s["ipBlocks"], policy: policy, warnings: &warnings)
                m.notSourceIps = try cidrs(s["notIpBlocks"], policy: policy, warnings: &warnings)
                m.unjudgeable = ["requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks"].filter { s[$0] != nil }
                note(m.unjudgeable, at: source)
                clause.append(m)
            }
            clauses.append(clause)
        }
        if let to = f["to"] {
            var clause: [Match] = []
            for entry in try to.sequence() {
                let e = try entry.fields(allowed: ["operation"])
                guard let operation = e["operation"] else { throw entry.error("missing operation") }
                let o = try operation.fields(allowed: ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"])
                var m = Match()
                m.destinationPorts = try ports(o["ports"])
                m.notDestinationPorts = try ports(o["notPorts"])
                m.unjudgeable = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"].filter { o[$0] != nil }
                note(m.unjudgeable, at: operation)
                clause.append(m)
            }
            clauses.append(clause)
        }
        for condition in try f["when"].sequence() {
            let c = try condition.fields(allowed: ["key", "values", "notValues"])
            guard let key = try c["key"]?.nonEmptyString() else { throw condition.error("missing key") }
            var m = Match()
            switch key {
            case "source.ip":
                m.sourceIps = try cidrs(c["values"], policy: policy, warnings: &warnings)
                m.notSourceIps = try cidrs(c["notValues"], policy: policy, warnings: &warnings)
            case "source.namespace":
                m.namespaces = try strings(c["values"], policy: policy, warnings: &warnings)
                m.notNamespaces = try strings(c["notValues"], policy: policy, warnings: &warnings)
            case "source.principal":
                m.principals = try strings(c["values"], principal: true, policy: policy, warnings: &warnings)
                m.notPrincipals = try strings(c["notValues"], principal: true, policy: policy, warnings: &warnings)
            case "destination.ip":
                m.destinationIps = try cidrs(c["values"], policy: policy, warnings: &warnings)
                m.notDestinationIps = try cidrs(c["notValues"], policy: policy, warnings: &warnings)
            case "destination.port":
                m.destinationPorts = try ports(c["values"]); m.notDestinationPorts = try ports(c["notValues"])
            default:
                m.unjudgeable = [key]
                note([key], at: condition)
            }
            clauses.append([m])
        }
        return clauses
    }

    private static func strings(_ r: YAMLReader?, principal: Bool = false, policy: String, warnings: inout [String]) throws(ConfigError) -> [StringMatch] {
        var out: [StringMatch] = []
        for v in try r.sequence() {
            let text = try v.string()
            if let w = PolicyLint.pattern(text, at: v.path, principal: principal) { warnings.append("\(policy): \(w)") }
            out.append(StringMatch(istio: text))
        }
        return out
    }

    /// `serviceAccounts: ["<namespace>/<name>"]`: the peers whose SVID names that account.
    private static func serviceAccounts(_ r: YAMLReader?) throws(ConfigError) -> [StringMatch] {
        var out: [StringMatch] = []
        for v in try r.sequence() {
            let text = try v.string()
            guard let match = PolicyLint.serviceAccount(text) else { throw v.error("\"\(text.prefix(80))\" is not <namespace>/<service account>") }
            out.append(match)
        }
        return out
    }

    private static func cidrs(_ r: YAMLReader?, policy: String, warnings: inout [String]) throws(ConfigError) -> [CIDR] {
        var out: [CIDR] = []
        for v in try r.sequence() {
            let s = try v.string()
            guard let c = CIDR(s) else { throw v.error("\"\(s)\" is not an IP address or CIDR block") }
            if let w = PolicyLint.cidr(s, c, at: v.path) { warnings.append("\(policy): \(w)") }
            out.append(c)
        }
        return out
    }

    /// Istio writes ports as strings ("8080"); numbers are accepted too.
    private static func ports(_ r: YAMLReader?) throws(ConfigError) -> [UInt16] {
        var out: [UInt16] = []
        for v in try r.sequence() {
            let s = try v.string()
            guard let p = UInt16(s), p > 0 else { throw v.error("\"\(s)\" is not a port") }
            out.append(p)
        }
        return out
    }
}
