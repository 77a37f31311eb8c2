import Foundation
import HBONECore
import HBONEIdentity
import HBONETLS
import HBONEEventLoop

/// `hbone check endpoint`: handshakes with an HBONE server as a client and reports what it presents
/// and whether that chain is trusted by the bundle (and is the identity expected).
public struct EndpointCheck {
    public var target: SocketAddress
    public var certDirectory: String
    /// Trust bundle file; default `<certDirectory>/root-cert.pem`.
    public var bundle: String?
    public var expected: SPIFFEID?
    /// Trust domains whose servers are trusted; empty: the trust domain of our own SVID (as the
    /// proxy trusts its own domain and its configured aliases).
    public var trustDomains: [String] = []
    /// Connect and each read give up after this many seconds.
    public var timeout: Int = 5

    public init(target: SocketAddress, certDirectory: String, bundle: String? = nil, expected: SPIFFEID? = nil) {
        self.target = target
        self.certDirectory = certDirectory
        self.bundle = bundle
        self.expected = expected
    }

    public struct Report {
        public var fields: [String: Any]
        public var trusted: Bool
        public var text: String

        public var json: String {
            let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// `HOST:PORT` or `[V6]:PORT` to an address (a host name through the system resolver).
    public static func resolve(_ target: String) throws(ToolError) -> SocketAddress {
        if let address = SocketAddress(target) { return address }
        guard let colon = target.lastIndex(of: ":"), let port = UInt16(target[target.index(after: colon)...]), port > 0 else {
            throw ToolError("\(target.prefix(80)): want HOST:PORT")
        }
        let host = String(target[..<colon])
        switch Socket.resolve(host: host, port: port) {
        case let .success(addresses): return addresses[0]
        case let .failure(error): throw ToolError("\(error)")
        }
    }

    public func run() throws -> Report {
        let trust = try TrustBundle(file: bundle ?? certDirectory + "/root-cert.pem")
        let own = try CertifiedKey(directory: certDirectory)
        let context = try TLSContext(role: .client, certifiedKey: own, trust: trust)
        let domains = Set(trustDomains.isEmpty ? [own.identity.trustDomain] : trustDomains)
        let engine = try TLSEngine(context: context, verification: .init(.inspect(trustDomains: domains)))
        var handshake = "incomplete"
        var failure: String?
        let connection: BlockingConnection
        do {
            connection = try BlockingConnection(target, timeout: timeout)
        } catch {
            // No TCP connection: nothing was presented, so there is no chain to judge.
            let text = "target:        \(target)\nproblem:       \(error)\nverdict:       NOT trusted (no connection)\n"
            return Report(fields: ["target": "\(target)", "handshake": "no connection", "reasons": ["\(error)"], "verdict": "NOT trusted"],
                          trusted: false, text: text)
        }
        failure = Self.drive(engine, connection)
        handshake = failure == nil ? "complete" : "failed"
        let chain = engine.peerChain
        let presented = chain.map { c -> [String: Any] in
            ["subject": c.subject, "issuer": c.issuer, "serial": c.serialHex, "notBefore": iso(c.notBefore), "notAfter": iso(c.notAfter),
             "uriSANs": c.uriSANs, "isCA": c.isCA]
        }
        let anchor = chain.last.flatMap { last in trust.roots.first { last.isSigned(by: $0) } }
        var trusted = failure == nil
        // The reason the proxy would log for the same server (its SPIFFE rules, trust domains included).
        var reasons: [String] = failure.map { [engine.rejection?.description ?? $0] } ?? []
        if let expected, engine.peerIdentity != expected {
            trusted = false
            reasons.append("server is \(engine.peerIdentity?.description ?? "unknown"), expected \(expected)")
        }
        if anchor == nil {
            trusted = false
            reasons.append("the presented chain does not end at a root of the bundle")
        }
        let fields: [String: Any] = [
            "target": "\(target)", "handshake": handshake, "tlsVersion": engine.protocolVersion, "alpn": engine.alpn ?? "none",
            "cipher": engine.cipher, "peerIdentity": engine.peerIdentity?.description ?? "none", "presentedChain": presented,
            "chainEndsAtBundleRoot": anchor != nil, "bundleRoot": anchor?.subject ?? "none", "verdict": trusted ? "trusted" : "NOT trusted",
            "reasons": reasons,
        ]
        var text = "target:        \(target)\n"
        text += "handshake:     \(handshake)  (\(engine.protocolVersion), ALPN \(engine.alpn ?? "none"), \(engine.cipher))\n"
        text += "peer identity: \(engine.peerIdentity?.description ?? "none")\n"
        for (i, c) in chain.enumerated() {
            text += "certificate \(i): subject \(c.subject.isEmpty ? "(empty)" : c.subject)\n"
            text += "               issuer  \(c.issuer)\n"
            text += "               serial  \(c.serialHex)   valid \(iso(c.notBefore)) → \(iso(c.notAfter))\n"
            // The server's own text: control bytes are escaped, not sent to the terminal.
            if !c.uriSANs.isEmpty { text += "               URI SAN \(c.uriSANs.map(Log.logfmtValue).joined(separator: ", "))\n" }
        }
        text += "chain ends at bundle root: \(anchor.map { "yes (\($0.subject))" } ?? "no")\n"
        for r in reasons { text += "problem:       \(r)\n" }
        text += "verdict:       \(trusted ? "trusted" : "NOT trusted")\n"
        return Report(fields: fields, trusted: trusted, text: text)
    }

    /// A blocking handshake; nil on success, else why it failed.
    static func drive(_ engine: TLSEngine, _ connection: borrowing BlockingConnection) -> String? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let status = engine.handshake()
            engine.takeCiphertext { connection.send($0) }
            switch status {
            case .complete:
                // TLS 1.3: a refusal of our certificate arrives after the client finished; wait briefly for it.
                connection.setReceiveTimeout(seconds: 1)
                let n = buffer.withUnsafeMutableBytes { connection.receive(into: $0) }
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
                let n = buffer.withUnsafeMutableBytes { connection.receive(into: $0) }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return "timed out waiting for the server's handshake" }
                if n <= 0 { return "connection closed during the handshake" }
                buffer.withUnsafeBytes { engine.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        }
    }
}
