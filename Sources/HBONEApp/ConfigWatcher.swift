import Foundation
import HBONEConfig
#if canImport(Glibc)
import Glibc
#endif

/// What the proxy watches on disk: the config file, the policy files (and directory listings), the
/// root bundle, the revocation lists and every local SVID (or the cacerts files). Any difference in the fingerprint
/// reloads everything, so rotations need no restart.
public enum ConfigWatcher {
    /// One entry per watched path: inode, modification time and size, or "missing". stat(2) follows
    /// symlinks: a Kubernetes secret volume swaps its `..data` link while the file names stay.
    public static func fingerprint(configPath: String, settings: Settings, workloads: [Workload]) -> [String] {
        var out: [String] = []
        func add(_ path: String) {
            var st = stat()
            if stat(path, &st) == 0 {
                out.append("\(path)|\(st.st_ino)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)|\(st.st_size)")
            } else {
                out.append("\(path)|missing")
            }
        }
        add(configPath)
        if !settings.rootCertificates.isEmpty { add(settings.rootCertificates) }
        if let crl = settings.crlPath { add(crl) }
        switch settings.certificates {
        case let .directory(dir):
            for w in workloads {
                add("\(dir)/\(w.namespace)/\(w.serviceAccount)/cert-chain.pem")
                add("\(dir)/\(w.namespace)/\(w.serviceAccount)/key.pem")
            }
        case let .ca(issuance):
            for f in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem", "tls.crt", "tls.key", "ca.crt"] { add(issuance.directory + "/" + f) }
        case .istioCA:
            break   // the CA's answers arrive through the control plane, not files
        }
        for p in settings.authorizationPolicies {
            add(p)
            if let names = try? FileManager.default.contentsOfDirectory(atPath: p) {
                for n in names.sorted() where n.hasSuffix(".yaml") || n.hasSuffix(".yml") { add(p + "/" + n) }
            }
        }
        return out
    }

    /// A hash of the bytes the config is parsed from: the file and every policy file it names (nil
    /// when one cannot be read: then the reload parses, and reports what is wrong).
    static func contentHash(configPath: String, settings: Settings) -> Int? {
        var hasher = Hasher()
        var files = [configPath]
        for p in settings.authorizationPolicies {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: p) {
                files += names.sorted().filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.map { p + "/" + $0 }
            } else {
                files.append(p)
            }
        }
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else { return nil }
            hasher.combine(f)
            hasher.combine(data)
        }
        // The environment is part of the file (${NAME}, and the variables that win over it).
        hasher.combine(ProcessInfo.processInfo.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        return hasher.finalize()
    }
}
