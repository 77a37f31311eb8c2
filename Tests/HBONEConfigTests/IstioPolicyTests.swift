import Foundation
import Testing
import HBONECore
import HBONEIdentity
import HBONEAuthz
@testable import HBONEConfig

func decide(_ yaml: String, from source: String?, ip: String = "10.1.0.5", port: UInt16 = 8080,
            target: PolicyTarget = PolicyTarget(namespace: "payments", labels: ["app": "ledger"])) throws -> Decision {
    let r = try IstioPolicyLoader.parse(yaml: yaml, file: "p.yaml", rootNamespace: "istio-system")
    let id = try source.map { try SPIFFEID(parsing: "spiffe://" + $0) }
    return PolicySet(r.policies).decide(ConnectionFacts(source: id, sourceIP: IPAddress(ip)!, destinationIP: IPAddress("10.2.0.9")!, destinationPort: port), for: target)
}

func ap(_ name: String, ns: String = "payments", _ spec: String, annotations: String = "") -> String {
    """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: \(name)
      namespace: \(ns)
    \(annotations)
    spec:
    \(spec)
    """
}

let checkoutP = "cluster.local/ns/payments/sa/checkout"
let frontendP = "cluster.local/ns/shop/sa/frontend"
let adminP = "cluster.local/ns/ops/sa/admin"

/// Real-world policies, as users write them.
@Suite struct IstioPolicyTests {
    @Test func allowNothing() throws {
        let y = ap("allow-nothing", "  {}")
        #expect(try !decide(y, from: checkoutP).allowed)
        #expect(try decide(y, from: checkoutP).reason == "no ALLOW policy matched")
    }

    @Test func denyAllFromTheRootNamespaceAppliesEverywhere() throws {
        let y = ap("deny-all", ns: "istio-system", "  action: DENY\n  rules:\n  - {}")
        let d = try decide(y, from: checkoutP, target: PolicyTarget(namespace: "anything", labels: [:]))
        #expect(!d.allowed)
        #expect(d.policy == "istio-system/deny-all")
    }

    @Test func namespaceIsolation() throws {
        let y = ap("same-namespace", "  action: ALLOW\n  rules:\n  - from:\n    - source:\n        namespaces: [\"payments\"]")
        #expect(try decide(y, from: checkoutP).allowed)
        #expect(try !decide(y, from: frontendP).allowed)
        #expect(try !decide(y, from: nil).allowed)
    }

    @Test func principalAllowList() throws {
        let y = ap("allow-list", """
          action: ALLOW
          rules:
          - from:
            - source:
                principals: ["\(checkoutP)", "cluster.local/ns/ops/*"]
        """)
        #expect(try decide(y, from: checkoutP).policy == "payments/allow-list")
        #expect(try decide(y, from: adminP).allowed)
        #expect(try !decide(y, from: frontendP).allowed)
    }

    @Test func portRestriction() throws {
        let y = ap("ports", """
          selector:
            matchLabels:
              app: ledger
          rules:
          - to:
            - operation:
                ports: ["8080"]
        """)
        #expect(try decide(y, from: frontendP, port: 8080).allowed)
        #expect(try !decide(y, from: frontendP, port: 9090).allowed)
        // A workload the selector does not pick is unaffected.
        #expect(try decide(y, from: frontendP, port: 9090, target: PolicyTarget(namespace: "payments", labels: ["app": "other"])).allowed)
    }

    @Test func ipBlocks() throws {
        let y = ap("office", """
          action: DENY
          rules:
          - from:
            - source:
                notIpBlocks: ["10.1.0.0/16", "fd00::/8"]
        """)
        #expect(try decide(y, from: checkoutP, ip: "10.1.3.4").allowed)
        #expect(try !decide(y, from: checkoutP, ip: "192.168.1.1").allowed)
        #expect(try decide(y, from: checkoutP, ip: "fd00::1").allowed)
    }

    @Test func dryRunIsObservedNotEnforced() throws {
        let y = ap("trial-deny", "  action: DENY\n  rules:\n  - {}", annotations: "  annotations:\n    istio.io/dry-run: \"true\"")
        let d = try decide(y, from: checkoutP)
        #expect(d.allowed)
        #expect(d.observed == ["payments/trial-deny(dry-run deny)"])
    }

    @Test func l7DenyFailsClosedWhereTheReferenceFailsOpen() throws {
        let y = ap("no-delete", """
          action: DENY
          rules:
          - to:
            - operation:
                methods: ["DELETE"]
                ports: ["8080"]
        """)
        let r = try IstioPolicyLoader.parse(yaml: y, file: "p.yaml", rootNamespace: "istio-system")
        #expect(r.warnings.count == 1)
        #expect(r.warnings[0].contains("payments/no-delete"))
        #expect(r.warnings[0].contains("fail closed"))
        #expect(try !decide(y, from: checkoutP, port: 8080).allowed)   // the reference would allow this
        #expect(try decide(y, from: checkoutP, port: 9090).allowed)    // L4 fields still judged
    }

    @Test func l7AllowNeverMatches() throws {
        let y = ap("get-only", "  rules:\n  - to:\n    - operation:\n        methods: [\"GET\"]")
        #expect(try !decide(y, from: checkoutP).allowed)
    }

    @Test func kubectlListAndMultiDocumentFiles() throws {
        let list = """
        apiVersion: v1
        kind: List
        items:
        - \(ap("a", "  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces: [\"shop\"]").replacingOccurrences(of: "\n", with: "\n  "))
        - apiVersion: security.istio.io/v1beta1
          kind: AuthorizationPolicy
          metadata: {name: b, namespace: payments}
          spec: {}
        """
        let r = try IstioPolicyLoader.parse(yaml: list, file: "l.yaml", rootNamespace: "istio-system")
        #expect(r.policies.map(\.key) == ["payments/a", "payments/b"])
        let multi = ap("x", "  {}") + "\n---\n" + ap("y", "  {}") + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
        let m = try IstioPolicyLoader.parse(yaml: multi, file: "m.yaml", rootNamespace: "istio-system")
        #expect(m.policies.count == 2)
        #expect(m.warnings.contains { $0.contains("ConfigMap") })
    }

    /// Kubernetes holds one policy per namespace and name; two definitions would both apply.
    @Test func aPolicyDefinedTwiceNamesBothPlaces() throws {
        let twice = ap("x", "  {}") + "\n---\n" + ap("x", "  action: DENY")
        do {
            _ = try IstioPolicyLoader.parse(yaml: twice, file: "t.yaml", rootNamespace: "istio-system")
            Issue.record("accepted")
        } catch {
            #expect(error.reason == "AuthorizationPolicy payments/x is also defined at t.yaml:1")
            #expect(error.file == "t.yaml" && error.line == 13)
        }
        let otherNamespace = ap("x", "  {}") + "\n---\n" + ap("x", ns: "shop", "  {}")
        #expect(try IstioPolicyLoader.parse(yaml: otherNamespace, file: "t.yaml", rootNamespace: "istio-system").policies.count == 2)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hbone-policies-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ap("x", "  {}").write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try ap("x", "  action: DENY").write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        do {
            _ = try IstioPolicyLoader.load(paths: [dir], rootNamespace: "istio-system")
            Issue.record("accepted")
        } catch {
            #expect(error.file == dir + "/b.yaml")
            #expect(error.reason == "AuthorizationPolicy payments/x is also defined at \(dir)/a.yaml:1")
        }
    }

    /// A policy directory that cannot be listed fails the load (a reload keeps the last good
    /// policies); it used to read as a directory without policies, which drops every DENY.
    @Test func anUnlistableDirectoryIsAnErrorNotAnEmptySet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hbone-policies-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ap("deny-all", "  action: DENY\n  rules:\n  - {}").write(toFile: dir + "/deny.yaml", atomically: true, encoding: .utf8)
        #expect(try IstioPolicyLoader.load(paths: [dir], rootNamespace: "istio-system").policies.count == 1)
        struct Unreadable: Error {}
        do {
            let r = try IstioPolicyLoader.load(paths: [dir], rootNamespace: "istio-system", listing: { _ in throw Unreadable() })
            Issue.record("loaded \(r.policies.count) policies from a directory that could not be listed")
        } catch {
            #expect(error.file == dir)
            #expect(error.reason.hasPrefix("cannot list the policy directory"))
        }
    }

    @Test func brokenPolicyNamesFileLineAndPath() {
        let y = ap("bad", "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/40\"]")
        do {
            _ = try IstioPolicyLoader.parse(yaml: y, file: "bad.yaml", rootNamespace: "istio-system")
            Issue.record("accepted")
        } catch {
            #expect(error.path == "spec.rules[0].from[0].source.ipBlocks[0]")
            #expect(error.line == 11)
            #expect(error.reason.contains("10.0.0.0/40"))
        }
    }

    @Test func customActionAndWaypointPoliciesAreSkippedWithAWarning() throws {
        let y = ap("ext", "  action: CUSTOM\n  provider: {name: opa}\n  rules:\n  - {}") + "\n---\n" + ap("wp", "  targetRefs:\n  - kind: Gateway\n    name: waypoint")
        let r = try IstioPolicyLoader.parse(yaml: y, file: "p.yaml", rootNamespace: "istio-system")
        #expect(r.policies.isEmpty)
        #expect(r.warnings.count == 2)
    }
}

/// A decision table over every L4 field, its negation, the edge cases and the order rules.
@Suite struct AuthorizationMatrixTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let spec: String
        let source: String?
        var ip = "10.1.0.5"
        var port: UInt16 = 8080
        let allowed: Bool
        var description: String { name }
    }

    static func allowFrom(_ field: String, _ value: String) -> String { "  rules:\n  - from:\n    - source:\n        \(field): [\"\(value)\"]" }
    static func denyFrom(_ field: String, _ value: String) -> String { "  action: DENY\n  rules:\n  - from:\n    - source:\n        \(field): [\"\(value)\"]" }
    static func allowTo(_ field: String, _ value: String) -> String { "  rules:\n  - to:\n    - operation:\n        \(field): [\"\(value)\"]" }
    static func denyTo(_ field: String, _ value: String) -> String { "  action: DENY\n  rules:\n  - to:\n    - operation:\n        \(field): [\"\(value)\"]" }
    static func allowWhen(_ key: String, _ field: String, _ value: String) -> String { "  rules:\n  - when:\n    - key: \(key)\n      \(field): [\"\(value)\"]" }

    static let cases: [Case] = [
        // principals
        Case(name: "allow principal exact hit", spec: allowFrom("principals", checkoutP), source: checkoutP, allowed: true),
        Case(name: "allow principal exact miss", spec: allowFrom("principals", checkoutP), source: frontendP, allowed: false),
        Case(name: "allow principal prefix", spec: allowFrom("principals", "cluster.local/ns/payments/*"), source: checkoutP, allowed: true),
        Case(name: "allow principal suffix", spec: allowFrom("principals", "*/sa/checkout"), source: checkoutP, allowed: true),
        Case(name: "allow principal suffix miss", spec: allowFrom("principals", "*/sa/ledger"), source: checkoutP, allowed: false),
        Case(name: "allow principal presence", spec: allowFrom("principals", "*"), source: frontendP, allowed: true),
        Case(name: "allow principal presence without identity", spec: allowFrom("principals", "*"), source: nil, allowed: false),
        Case(name: "allow principal without identity", spec: allowFrom("principals", checkoutP), source: nil, allowed: false),
        Case(name: "allow notPrincipals hit", spec: allowFrom("notPrincipals", checkoutP), source: checkoutP, allowed: false),
        Case(name: "allow notPrincipals miss", spec: allowFrom("notPrincipals", checkoutP), source: frontendP, allowed: true),
        Case(name: "allow notPrincipals without identity", spec: allowFrom("notPrincipals", checkoutP), source: nil, allowed: true),
        Case(name: "deny principal hit", spec: denyFrom("principals", checkoutP), source: checkoutP, allowed: false),
        Case(name: "deny principal miss", spec: denyFrom("principals", checkoutP), source: frontendP, allowed: true),
        Case(name: "deny principal presence without identity", spec: denyFrom("principals", "*"), source: nil, allowed: true),
        Case(name: "deny notPrincipals without identity", spec: denyFrom("notPrincipals", "*"), source: nil, allowed: false),
        Case(name: "deny notPrincipals with identity", spec: denyFrom("notPrincipals", "*"), source: checkoutP, allowed: true),
        // namespaces
        Case(name: "allow namespace hit", spec: allowFrom("namespaces", "payments"), source: checkoutP, allowed: true),
        Case(name: "allow namespace miss", spec: allowFrom("namespaces", "payments"), source: frontendP, allowed: false),
        Case(name: "allow namespace prefix", spec: allowFrom("namespaces", "pay*"), source: checkoutP, allowed: true),
        Case(name: "allow namespace without identity", spec: allowFrom("namespaces", "payments"), source: nil, allowed: false),
        Case(name: "allow notNamespaces hit", spec: allowFrom("notNamespaces", "shop"), source: frontendP, allowed: false),
        Case(name: "allow notNamespaces miss", spec: allowFrom("notNamespaces", "shop"), source: checkoutP, allowed: true),
        Case(name: "deny namespace hit", spec: denyFrom("namespaces", "shop"), source: frontendP, allowed: false),
        Case(name: "deny notNamespaces hit", spec: denyFrom("notNamespaces", "payments"), source: frontendP, allowed: false),
        Case(name: "deny notNamespaces miss", spec: denyFrom("notNamespaces", "payments"), source: checkoutP, allowed: true),
        // ipBlocks
        Case(name: "allow ipBlock hit", spec: allowFrom("ipBlocks", "10.1.0.0/16"), source: checkoutP, allowed: true),
        Case(name: "allow ipBlock miss", spec: allowFrom("ipBlocks", "10.9.0.0/16"), source: checkoutP, allowed: false),
        Case(name: "allow ipBlock single address", spec: allowFrom("ipBlocks", "10.1.0.5"), source: checkoutP, allowed: true),
        Case(name: "allow ipBlock v6 hit", spec: allowFrom("ipBlocks", "fd00::/8"), source: checkoutP, ip: "fd00::5", allowed: true),
        Case(name: "allow ipBlock v6 vs v4 source", spec: allowFrom("ipBlocks", "fd00::/8"), source: checkoutP, allowed: false),
        Case(name: "allow ipBlock without identity", spec: allowFrom("ipBlocks", "10.1.0.0/16"), source: nil, allowed: true),
        Case(name: "allow notIpBlocks hit", spec: allowFrom("notIpBlocks", "10.1.0.0/16"), source: checkoutP, allowed: false),
        Case(name: "allow notIpBlocks miss", spec: allowFrom("notIpBlocks", "10.9.0.0/16"), source: checkoutP, allowed: true),
        Case(name: "deny ipBlock hit", spec: denyFrom("ipBlocks", "10.1.0.0/24"), source: checkoutP, allowed: false),
        Case(name: "deny notIpBlocks v6", spec: denyFrom("notIpBlocks", "fd00::/8"), source: checkoutP, ip: "2001:db8::1", allowed: false),
        // ports
        Case(name: "allow port hit", spec: allowTo("ports", "8080"), source: checkoutP, allowed: true),
        Case(name: "allow port miss", spec: allowTo("ports", "8080"), source: checkoutP, port: 9090, allowed: false),
        Case(name: "allow notPorts hit", spec: allowTo("notPorts", "8080"), source: checkoutP, allowed: false),
        Case(name: "allow notPorts miss", spec: allowTo("notPorts", "8080"), source: checkoutP, port: 9090, allowed: true),
        Case(name: "deny port hit", spec: denyTo("ports", "8080"), source: checkoutP, allowed: false),
        Case(name: "deny port miss", spec: denyTo("ports", "8080"), source: checkoutP, port: 9090, allowed: true),
        Case(name: "deny notPorts", spec: denyTo("notPorts", "8080"), source: checkoutP, port: 22, allowed: false),
        // when
        Case(name: "when source.ip hit", spec: allowWhen("source.ip", "values", "10.1.0.0/16"), source: checkoutP, allowed: true),
        Case(name: "when source.ip notValues", spec: allowWhen("source.ip", "notValues", "10.1.0.0/16"), source: checkoutP, allowed: false),
        Case(name: "when source.namespace", spec: allowWhen("source.namespace", "values", "payments"), source: checkoutP, allowed: true),
        Case(name: "when source.namespace miss", spec: allowWhen("source.namespace", "values", "payments"), source: frontendP, allowed: false),
        Case(name: "when source.principal", spec: allowWhen("source.principal", "values", checkoutP), source: checkoutP, allowed: true),
        Case(name: "when source.principal notValues", spec: allowWhen("source.principal", "notValues", checkoutP), source: checkoutP, allowed: false),
        Case(name: "when destination.ip", spec: allowWhen("destination.ip", "values", "10.2.0.0/16"), source: checkoutP, allowed: true),
        Case(name: "when destination.ip miss", spec: allowWhen("destination.ip", "values", "10.3.0.0/16"), source: checkoutP, allowed: false),
        Case(name: "when destination.port", spec: allowWhen("destination.port", "values", "8080"), source: checkoutP, allowed: true),
        Case(name: "when destination.port notValues", spec: allowWhen("destination.port", "notValues", "8080"), source: checkoutP, allowed: false),
        Case(name: "when HTTP key in ALLOW", spec: allowWhen("request.headers[x-user]", "values", "alice"), source: checkoutP, allowed: false),
        Case(name: "when HTTP key in DENY", spec: "  action: DENY\n  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: [\"x\"]", source: checkoutP, allowed: false),
        // HTTP-only fields
        Case(name: "allow methods only", spec: allowTo("methods", "GET"), source: checkoutP, allowed: false),
        Case(name: "allow hosts only", spec: allowTo("hosts", "ledger.example"), source: checkoutP, allowed: false),
        Case(name: "allow paths only", spec: allowTo("paths", "/api/*"), source: checkoutP, allowed: false),
        Case(name: "allow requestPrincipals", spec: allowFrom("requestPrincipals", "*"), source: checkoutP, allowed: false),
        Case(name: "allow remoteIpBlocks", spec: allowFrom("remoteIpBlocks", "10.0.0.0/8"), source: checkoutP, allowed: false),
        Case(name: "deny methods only (fail closed)", spec: denyTo("methods", "DELETE"), source: checkoutP, allowed: false),
        Case(name: "deny paths only (fail closed)", spec: denyTo("paths", "/admin"), source: checkoutP, allowed: false),
        Case(name: "deny requestPrincipals (fail closed)", spec: denyFrom("requestPrincipals", "*"), source: checkoutP, allowed: false),
        // structure and order
        Case(name: "empty ALLOW spec denies", spec: "  {}", source: checkoutP, allowed: false),
        Case(name: "empty DENY spec denies nothing", spec: "  action: DENY", source: checkoutP, allowed: true),
        Case(name: "ALLOW rule with nothing allows all", spec: "  rules:\n  - {}", source: nil, allowed: true),
        Case(name: "DENY rule with nothing denies all", spec: "  action: DENY\n  rules:\n  - {}", source: checkoutP, allowed: false),
        Case(name: "AUDIT only logs", spec: "  action: AUDIT\n  rules:\n  - {}", source: checkoutP, allowed: true),
        Case(name: "rules are OR-ed", spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"shop\"]\n  - to:\n    - operation:\n        ports: [\"8080\"]", source: checkoutP, allowed: true),
        Case(name: "from and to are AND-ed", spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"payments\"]\n    to:\n    - operation:\n        ports: [\"9090\"]", source: checkoutP, allowed: false),
        Case(name: "fields in one source are AND-ed", spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"payments\"]\n        ipBlocks: [\"10.9.0.0/16\"]", source: checkoutP, allowed: false),
        Case(name: "sources are OR-ed", spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"shop\"]\n    - source:\n        ipBlocks: [\"10.1.0.0/16\"]", source: checkoutP, allowed: true),
        Case(name: "values of one field are OR-ed", spec: "  rules:\n  - from:\n    - source:\n        namespaces: [\"shop\", \"payments\"]", source: checkoutP, allowed: true),
        Case(name: "when conditions are AND-ed", spec: "  rules:\n  - when:\n    - key: source.namespace\n      values: [\"payments\"]\n    - key: destination.port\n      values: [\"9090\"]", source: checkoutP, allowed: false),
    ]

    @Test(arguments: cases)
    func decision(c: Case) throws {
        let d = try decide(ap("p", c.spec), from: c.source, ip: c.ip, port: c.port)
        #expect(d.allowed == c.allowed, "\(c.name): \(d)")
    }

    @Test func tableIsLargeEnough() { #expect(Self.cases.count >= 60) }

    @Test func denyBeatsAllowAcrossPolicies() throws {
        let y = ap("allow-all", "  rules:\n  - {}") + "\n---\n" + ap("deny-shop", Self.denyFrom("namespaces", "shop"))
        let d = try decide(y, from: frontendP)
        #expect(!d.allowed)
        #expect(d.policy == "payments/deny-shop")
        #expect(try decide(y, from: checkoutP).policy == "payments/allow-all")
    }
}
