import Foundation
import HBONETLS

/// `hbone check cacerts`: do the clusters' cacerts bundles chain to one root (so their workloads
/// trust each other), and is each intermediate usable?
public enum CACertsCheck {
    /// The report, and whether every bundle is wired.
    public static func run(_ directories: [String]) -> (text: String, ok: Bool) {
        var roots: Set<String> = []
        var ok = true
        var text = ""
        for dir in directories {
            do {
                let ca = try Certificate.parsePEMChain(read(dir + "/ca-cert.pem"))[0]
                let bundle = try Certificate.parsePEMChain(read(dir + "/root-cert.pem"))
                let chain = try Certificate.parsePEMChain(read(dir + "/cert-chain.pem"))
                let root = bundle.first { ca.isSigned(by: $0) }
                let days = ca.notAfter.timeIntervalSinceNow / 86400
                text += "\(dir):\n"
                text += "  intermediate \(ca.subject)  issuer \(ca.issuer)\n"
                text += "  valid \(iso(ca.notBefore)) → \(iso(ca.notAfter))  (\(String(format: "%.0f", days)) days left)\(ca.pathLength.map { "  pathlen \($0)" } ?? "")\n"
                if let root {
                    text += "  signed by root \(root.subject)  sha256 \(root.fingerprintSHA256.prefix(23))…\n"
                    roots.insert(root.fingerprintSHA256)
                } else {
                    text += "  PROBLEM: not signed by any certificate in root-cert.pem\n"
                    ok = false
                }
                if chain.first.map({ $0.der != ca.der }) ?? true { text += "  PROBLEM: cert-chain.pem does not start with ca-cert.pem\n"; ok = false }
                if !ca.isCA { text += "  PROBLEM: ca-cert.pem is not a CA\n"; ok = false }
                // The key must sign for this certificate, or nothing the cluster issues will verify.
                if let keyBytes = FileManager.default.contents(atPath: dir + "/ca-key.pem") {
                    do {
                        if !(try PrivateKey.parsePEM([UInt8](keyBytes))).matches(ca) {
                            text += "  PROBLEM: ca-key.pem does not belong to ca-cert.pem\n"
                            ok = false
                        }
                    } catch {
                        text += "  PROBLEM: ca-key.pem: \(error)\n"
                        ok = false
                    }
                } else {
                    text += "  note: no ca-key.pem here (the key is elsewhere; not checked)\n"
                }
                if days < 0 { text += "  PROBLEM: expired\n"; ok = false } else if days < 30 { text += "  warning: expires in under 30 days\n" }
            } catch {
                text += "\(dir): PROBLEM: \(error)\n"
                ok = false
            }
        }
        if roots.count > 1 { text += "PROBLEM: the bundles chain to \(roots.count) different roots: clusters will not trust each other\n"; ok = false }
        text += ok ? "verdict: all bundles chain to the same root\n" : "verdict: NOT wired\n"
        return (text, ok)
    }

    static func read(_ path: String) throws(ToolError) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw ToolError("cannot read \(path)") }
        return [UInt8](d)
    }
}
