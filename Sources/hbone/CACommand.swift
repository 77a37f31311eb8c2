import ArgumentParser
import HBONEConfig
import HBONEIdentity
import HBONETLS
import HBONEApp

/// `hbone ca`: the shared root, per-cluster intermediates (`cacerts`), workload SVIDs, the Secret.
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ca", abstract: "Create the mesh PKI: root, per-cluster intermediates, SVIDs.",
                                                    subcommands: [Root.self, Intermediate.self, Issue.self, KubernetesSecret.self])

    struct Root: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the shared root: root-cert.pem, root-key.pem.")
        @Option(help: "Output directory.") var out: String
        @Option(help: "ec-p256, ec-p384, rsa-2048 or rsa-4096.") var keyType: KeyType = .ecP256
        @Option(help: "Validity in days.") var days = 3650
        @Option(help: "Organization in the subject.") var org = "hbone"
        @Option(help: "The whole subject, O=…,CN=… (instead of --org).") var subject: String?
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            print(try runtime { try MeshCA.createRoot(out: out, keyType: keyType, days: days, organization: org, subject: subject, force: force) })
        }
    }

    struct Intermediate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a cluster's intermediate: the four cacerts files.")
        @Option(help: "Directory with root-cert.pem and root-key.pem.") var root: String
        @Option(help: "Cluster name (in the subject).") var cluster: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "Constrain the intermediate to SVIDs of this trust domain (URI name constraint).") var trustDomain: String?
        @Option(help: "ec-p256, ec-p384, rsa-2048 or rsa-4096.") var keyType: KeyType = .ecP256
        @Option(help: "Validity in days.") var days = 1825
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            print(try runtime {
                try MeshCA.createIntermediate(root: root, cluster: cluster, out: out, trustDomain: trustDomain, keyType: keyType, days: days, force: force)
            })
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a workload SVID: cert-chain.pem, key.pem, root-cert.pem.")
        @Option(help: "A cacerts directory (ca-cert.pem, ca-key.pem, root-cert.pem).") var ca: String
        @Option(help: "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>") var spiffeId: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "Lifetime, e.g. 24h.") var ttl = "24h"
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            let id: SPIFFEID
            do { id = try SPIFFEID(parsing: spiffeId) } catch { throw ValidationError("--spiffe-id: \(error)") }
            guard let lifetime = parseDuration(ttl), lifetime > .zero else { throw ValidationError("--ttl \(ttl) is not a duration") }
            print(try runtime { try MeshCA.issue(ca: ca, identity: id, lifetime: lifetime, out: out, force: force) })
        }
    }

    struct KubernetesSecret: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "kubernetes-secret", abstract: "Print the cacerts Secret YAML for a cluster.")
        @Option(help: "A cacerts directory.") var ca: String
        @Option(help: "Namespace of the Secret.") var namespace = "istio-system"

        func run() throws {
            print(try runtime { try MeshCA.kubernetesSecret(ca: ca, namespace: namespace) }, terminator: "")
        }
    }
}


extension KeyType: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
