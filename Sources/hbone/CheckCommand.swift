import ArgumentParser
import Foundation
import HBONECore
import HBONEIdentity
import HBONETLS
#if canImport(Glibc)
import Glibc
#endif

/// `hbone check`: day-2 checks that trust is wired.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check an HBONE endpoint or cacerts bundles.",
                                                    subcommands: [Endpoint.self, CACerts.self], defaultSubcommand: Endpoint.self)

    struct Endpoint: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "endpoint",
            abstract: "Handshake with HOST:PORT as an HBONE client and show what it presents.")
        @Argument(help: "HOST:PORT of an HBONE server (…:15008).") var target: String
        @Option(help: "Directory with the client SVID (cert-chain.pem, key.pem; root-cert.pem unless --ca).") var certDir: String
        @Option(help: "Trust bundle (default: <cert-dir>/root-cert.pem).") var ca: String?
        @Option(help: "The SPIFFE ID the server must present.") var expectId: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            guard let address = SocketAddress(target) else { throw ValidationError("target must be ip:port") }
            let expected = try expectId.map { s throws -> SPIFFEID in
                do { return try SPIFFEID(parsing: s) } catch { throw ValidationError("--expect-id: \(error)") }
            }
            let trust = try TrustBundle(file: ca ?? certDir + "/root-cert.pem")
            let context = try TLSContext(role: .client, certifiedKey: CertifiedKey(directory: certDir), trust: trust)
            let engine = try TLSEngine(context: context, verification: .init(.inspect))
            var handshake = "incomplete"
            var failure: String?
            do {
                let fd = try connectBlocking(address)
                defer { close(fd) }
                failure = drive(engine, fd)
                handshake = failure == nil ? "complete" : "failed"
            } catch {
                failure = "\(error)"
            }
            let chain = engine.peerChain
            let presented = chain.map { c -> [String: Any] in
                ["subject": c.subject, "issuer": c.issuer, "serial": c.serialHex, "notBefore": iso(c.notBefore), "notAfter": iso(c.notAfter),
                 "uriSANs": c.uriSANs, "isCA": c.isCA]
            }
            let anchor = chain.last.flatMap { last in trust.roots.first { last.isSigned(by: $0) } }
            var verdict = failure == nil
            var reasons: [String] = failure.map { [$0] } ?? []
            if let expected, engine.peerIdentity != expected {
                verdict = false
                reasons.append("server is \(engine.peerIdentity?.description ?? "unknown"), expected \(expected)")
            }
            if anchor == nil {
                verdict = false
                reasons.append("the presented chain does not end at a root of the bundle")
            }
            let report: [String: Any] = [
                "target": target, "handshake": handshake, "tlsVersion": engine.protocolVersion, "alpn": engine.alpn ?? "none",
                "cipher": engine.cipher, "peerIdentity": engine.peerIdentity?.description ?? "none", "presentedChain": presented,
                "chainEndsAtBundleRoot": anchor != nil, "bundleRoot": anchor?.subject ?? "none", "verdict": verdict ? "trusted" : "NOT trusted",
                "reasons": reasons,
            ]
            if json {
                let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("target:        \(target)")
                print("handshake:     \(handshake)  (\(engine.protocolVersion), ALPN \(engine.alpn ?? "none"), \(engine.cipher))")
                print("peer identity: \(engine.peerIdentity?.description ?? "none")")
                for (i, c) in chain.enumerated() {
                    print("certificate \(i): subject \(c.subject.isEmpty ? "(empty)" : c.subject)")
                    print("               issuer  \(c.issuer)")
                    print("               serial  \(c.serialHex)   valid \(iso(c.notBefore)) → \(iso(c.notAfter))")
                    if !c.uriSANs.isEmpty { print("               URI SAN \(c.uriSANs.joined(separator: ", "))") }
                }
                print("chain ends at bundle root: \(anchor.map { "yes (\($0.subject))" } ?? "no")")
                for r in reasons { print("problem:       \(r)") }
                print("verdict:       \(verdict ? "trusted" : "NOT trusted")")
            }
            if !verdict { throw ExitCode(1) }
        }

        /// Blocking handshake; nil on success, else why it failed.
        func drive(_ engine: TLSEngine, _ fd: Int32) -> String? {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let status = engine.handshake()
                engine.takeCiphertext { bytes in _ = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
                switch status {
                case .complete:
                    // TLS 1.3: a refusal of our certificate arrives after the client finished; wait briefly for it.
                    var tv = timeval(tv_sec: 1, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        buffer.withUnsafeBytes { engine.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        if case let .failed(e) = buffer.withUnsafeMutableBytes({ engine.read(into: $0) }) { return "server refused our certificate: \(e.reason)" }
                    } else if n == 0 {
                        return "server closed the connection after the handshake"
                    }
                    return nil
                case let .failed(e):
                    return e.description
                case .inProgress:
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { return "connection closed during the handshake" }
                    buffer.withUnsafeBytes { engine.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }
        }
    }

    struct CACerts: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cacerts", abstract: "Check that clusters' cacerts bundles chain to the same root.")
        @Argument(help: "cacerts directories (ca-cert.pem, root-cert.pem, cert-chain.pem).") var dirs: [String]

        func run() throws {
            var roots: Set<String> = []
            var ok = true
            for dir in dirs {
                do {
                    let ca = try Certificate.parsePEMChain(read(dir + "/ca-cert.pem"))[0]
                    let bundle = try Certificate.parsePEMChain(read(dir + "/root-cert.pem"))
                    let chain = try Certificate.parsePEMChain(read(dir + "/cert-chain.pem"))
                    let root = bundle.first { ca.isSigned(by: $0) }
                    let days = ca.notAfter.timeIntervalSinceNow / 86400
                    print("\(dir):")
                    print("  intermediate \(ca.subject)  issuer \(ca.issuer)")
                    print("  valid \(iso(ca.notBefore)) → \(iso(ca.notAfter))  (\(String(format: "%.0f", days)) days left)\(ca.pathLength.map { "  pathlen \($0)" } ?? "")")
                    if let root {
                        print("  signed by root \(root.subject)  sha256 \(root.fingerprintSHA256.prefix(23))…")
                        roots.insert(root.fingerprintSHA256)
                    } else {
                        print("  PROBLEM: not signed by any certificate in root-cert.pem")
                        ok = false
                    }
                    if chain.first.map({ $0.der != ca.der }) ?? true { print("  PROBLEM: cert-chain.pem does not start with ca-cert.pem"); ok = false }
                    if !ca.isCA { print("  PROBLEM: ca-cert.pem is not a CA"); ok = false }
                    if days < 0 { print("  PROBLEM: expired"); ok = false } else if days < 30 { print("  warning: expires in under 30 days") }
                } catch {
                    print("\(dir): PROBLEM: \(error)")
                    ok = false
                }
            }
            if roots.count > 1 { print("PROBLEM: the bundles chain to \(roots.count) different roots: clusters will not trust each other"); ok = false }
            print(ok ? "verdict: all bundles chain to the same root" : "verdict: NOT wired")
            if !ok { throw ExitCode(1) }
        }

        func read(_ path: String) throws -> [UInt8] {
            guard let d = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            return [UInt8](d)
        }
    }
}

func iso(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }

func connectBlocking(_ address: SocketAddress) throws -> Int32 {
    guard case let .v4(v) = address.ip else { throw ValidationError("IPv4 targets only") }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = address.port.bigEndian
    addr.sin_addr.s_addr = v.bigEndian
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if rc != 0 {
        let e = errno
        close(fd)
        throw ValidationError("connect \(address): \(String(cString: strerror(e)))")
    }
    return fd
}
