import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEAuthz
import HBONEProxy
import HBONEAdmin
import HBONEH2
import HBONETLS
import HBONEBenchFixtures
import HBONEGRPC
import HBONEXDS
import HBONEXDSProto
import SwiftProtobuf
import HBONEInPod
import HBONEDNS

/// The parsers that take untrusted bytes, each as a function of one input. A target returns
/// normally for every input: a crash, a trap or a sanitizer report is the finding.
enum FuzzTargets {
    static let all: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
        "spiffe": spiffe,
        "socks5": socks5,
        "address": address,
        "admin-http": adminHTTP,
        "config": config,
        "authz-policy": authorizationPolicy,
        "h2-server": h2Server,
        "grpc": grpc,
        "xds": xds,
        "zds": zds,
        "hbone-peer": hbonePeer,
        "hbone-inbound": hboneInbound,
        "certificate": certificate,
        "crl": revocationList,
        "private-key": privateKey,
        "dns": dns,
        "baggage": baggage,
        "dns-answer": dnsAnswer,
    ]

    static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A peer's `baggage` values (one per line): every kept value is a bounded label without
    /// control characters, and what was parsed, written and parsed again is the same.
    static func baggage(_ bytes: UnsafeRawBufferPointer) {
        let values = text(bytes).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = Baggage(parsing: values)
        for v in [b.clusterId, b.namespace, b.workloadName, b.serviceName, b.revision, b.region, b.zone].compactMap({ $0 }) {
            precondition(!v.isEmpty && v.utf8.count <= Baggage.maxValueBytes && !v.utf8.contains { $0 < 0x20 || $0 == 0x7f },
                         "baggage kept a value it should not: \(v.debugDescription)")
        }
        for type in ProxyConfig.workloadTypes {
            let again = Baggage(parsing: [b.headerValue(workloadType: type)])
            precondition(again == b, "baggage does not round-trip: \(b) -> \(again)")
        }
    }

    static func spiffe(_ bytes: UnsafeRawBufferPointer) {
        if let id = try? SPIFFEID(parsing: text(bytes)) {
            // What parses must print back to something that parses to the same ID.
            precondition((try? SPIFFEID(parsing: id.description)) == id, "SPIFFE ID does not round-trip: \(id)")
            // The ID keeps the text it was parsed from as its URI, and its equality and hash use
            // only that: the parts must write exactly that text again.
            let rebuilt = try? SPIFFEID(trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount)
            precondition(rebuilt?.uri == id.uri && rebuilt?.principal == id.principal, "SPIFFE ID's parts write another URI: \(id)")
        }
    }

    /// The input split at arbitrary points, as TCP may deliver it: the replies, the outcome and
    /// the early data must be the same as when it all arrives in one read.
    static func socks5(_ bytes: UnsafeRawBufferPointer) {
        var whole = Socks5Parser()
        let once = whole.feed(bytes)
        let onceLeftover = once.outcome == .needMore ? [] : whole.takeLeftover()
        var parser = Socks5Parser()
        var sent: [UInt8] = []
        var outcome = Socks5Parser.Step.Outcome.needMore
        var leftover: [UInt8] = []
        var offset = 0
        var chunk = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            let step = parser.feed(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            sent += step.send
            outcome = step.outcome
            offset = end
            if case .connect = step.outcome { leftover = parser.takeLeftover() + Array(bytes[offset...]) }
            if step.outcome != .needMore { break }
            chunk = chunk * 3 % 17 + 1
        }
        precondition(sent == once.send, "SOCKS5 replies depend on how the bytes were split: \(sent) vs \(once.send)")
        switch (outcome, once.outcome) {
        case (.needMore, .needMore), (.fail, .fail): break
        case let (.connect(a), .connect(b)):
            precondition(a == b && leftover == onceLeftover, "SOCKS5 request or early data depend on how the bytes were split")
        default: preconditionFailure("SOCKS5 outcome depends on how the bytes were split: \(outcome) vs \(once.outcome)")
        }
    }

    static func address(_ bytes: UnsafeRawBufferPointer) {
        let s = text(bytes)
        if case let .success(a) = SocketAddress.parse(s) {
            // The normal form is a fixed point: printing and parsing again changes nothing.
            precondition(SocketAddress(a.description) == a, "address does not round-trip: \(s) -> \(a)")
        }
        if let ip = IPAddress(s) { precondition(IPAddress(ip.description) == ip, "IP does not round-trip: \(s)") }
        if let block = CIDR(s), let ip = IPAddress(s.split(separator: "/").first ?? "") {
            precondition(block.contains(ip), "\(s) does not contain its own address")
        }
    }

    /// In two reads or in one, a request parses to the same request, and what one refuses the
    /// other refuses too (the status may differ: a size limit can be met before a bad byte).
    static func adminHTTP(_ bytes: UnsafeRawBufferPointer) {
        var split = HTTPRequestParser()
        let half = bytes.count / 2
        var outcome = split.feed(Array(bytes[0..<half]))
        if case .needMore = outcome { outcome = split.feed(Array(bytes[half...])) }
        var whole = HTTPRequestParser()
        let once = whole.feed(Array(bytes))
        switch (outcome, once) {
        case (.needMore, .needMore), (.bad, .bad): break
        case let (.request(a), .request(b)): precondition(a == b, "the request depends on how it was split: \(a) vs \(b)")
        default: preconditionFailure("admin HTTP outcome depends on how the bytes were split: \(outcome) vs \(once)")
        }
    }

    /// The policies of a config that loads are decided on as the authz-policy target's are.
    static func config(_ bytes: UnsafeRawBufferPointer) {
        guard let config = try? ProxyConfig.parse(yaml: text(bytes), file: "fuzz.yaml", environment: [:]), !config.policies.isEmpty else { return }
        AuthzOracle.check(config.policies, rootNamespace: config.settings.rootNamespace)
    }

    /// What loads is also decided on: the compiled decision must agree with Istio's order written
    /// out plainly, and not depend on the policies' order (AuthzOracle).
    static func authorizationPolicy(_ bytes: UnsafeRawBufferPointer) {
        guard let loaded = try? IstioPolicyLoader.parse(yaml: text(bytes), file: "fuzz.yaml", rootNamespace: "istio-system"),
              !loaded.policies.isEmpty else { return }
        AuthzOracle.check(loaded.policies, rootNamespace: "istio-system")
    }

    /// Raw HTTP/2 from the client after a completed in-memory mTLS handshake, into a server
    /// session that answers as the proxy does (200 or an error status, DATA consumed, FIN echoed).
    static func h2Server(_ bytes: UnsafeRawBufferPointer) {
        H2ServerHarness.shared.run(bytes)
    }

    /// HTTP/2 from a peer proxy that holds a valid SVID, into the client proxy's own worker
    /// (HostilePeerHarness): no trap, and nothing left open once the peer and the application go.
    static func hbonePeer(_ bytes: UnsafeRawBufferPointer) {
        #if DEBUG
        HostilePeerHarness.run(bytes)
        #endif
    }

    /// HTTP/2 from a client that holds a valid SVID, into the server proxy's own worker
    /// (HostileClientHarness): no trap, nothing through to a denied port, nothing left open.
    static func hboneInbound(_ bytes: UnsafeRawBufferPointer) {
        #if DEBUG
        HostileClientHarness.run(bytes)
        #endif
    }

    /// A Delta xDS response from istiod, as bytes: whatever decodes is applied twice (the second
    /// time changes nothing), every reply answers the response's own nonce, the policies it
    /// leaves are decided on as the authz-policy target's are (AuthzOracle), and the mesh index
    /// kept change by change matches one built from nothing.
    static func xds(_ bytes: UnsafeRawBufferPointer) {
        guard let response = try? Envoy_Service_Discovery_V3_DeltaDiscoveryResponse(serializedBytes: Array(bytes)) else { return }
        var store = XDSStore(nodeID: "ztunnel~1.1.1.1~p.ns~ns.svc.cluster.local", metadata: [:])
        let first = store.apply(response)
        precondition(first.reply.responseNonce == response.nonce, "xDS reply does not answer the response's nonce")
        precondition(first.isACK == !first.reply.hasErrorDetail, "xDS ACK carries an error, or a NACK none")
        let again = store.apply(response)
        precondition(!again.changed, "applying the same xDS response twice changed the state")
        _ = store.initialRequests()
        if !store.policies.isEmpty {
            AuthzOracle.check(store.policies.keys.sorted().compactMap { store.policies[$0] }, rootNamespace: "istio-system")
        }
        routeThroughEverything(store)
        meshIndex(response)
    }

    /// The proxy's snapshot as the merged config would build it from the store, then a connection
    /// to every address and hostname it holds, from several clients: istiod's resources decide
    /// routes, so a resource that makes a route trap is a finding (a workload without an address
    /// listing a service once did).
    static func routeThroughEverything(_ store: XDSStore) {
        guard !store.workloads.isEmpty || !store.services.isEmpty else { return }
        var config = xdsBaseConfig
        config.workloads = store.workloads.keys.sorted().compactMap { store.workloads[$0] }
        config.services = store.services.keys.sorted().compactMap { store.services[$0] }
        config.policies = store.policies.keys.sorted().compactMap { store.policies[$0] }
        // From the default network and from one the resources name: which addresses and endpoints
        // count depends on the proxy's network.
        let named = Set(config.workloads.map(\.network) + config.services.flatMap { $0.addresses.map(\.network) }).subtracting([""])
        for network in [""] + named.sorted().prefix(1) {
            config.settings.network = network
            route(config)
        }
    }

    static func route(_ config: ProxyConfig) {
        guard let state = try? ProxyState(config: config, trust: xdsTrust, certificates: [:], version: 1) else { return }
        var targets: [SocketAddress] = []
        for w in config.workloads { targets += w.workloadIps.map { SocketAddress(ip: $0, port: 8080) } }
        // Clients: none known (placed on the proxy's node), and two workloads (their locality,
        // node, cluster and network rank a service's endpoints).
        let sources: [IPAddress?] = [nil] + config.workloads.prefix(2).compactMap(\.workloadIps.first)
        let keys = [0, 1, 2, 40_000, Int.min, Int.max]
        for s in config.services {
            let ports = s.ports.keys.sorted().prefix(4) + [80]
            for vip in s.vips { targets += ports.map { SocketAddress(ip: vip, port: $0) } }
            // A CIDR VIP's first address and its second (every address in the block is the service).
            for c in s.cidrVIPs {
                let second: IPAddress
                switch c.cidr.network {
                case let .v4(v): second = .v4(v &+ 1)
                case let .v6(hi, lo): second = .v6(hi, lo &+ 1)
                }
                targets += [c.cidr.network, second].map { SocketAddress(ip: $0, port: ports.first ?? 80) }
            }
            for hashKey in keys { _ = state.resolve(hostname: s.hostname, port: ports.first ?? 80, hashKey: hashKey, from: sources.last ?? nil) }
            // The DNS proxy answers the same hostnames from istiod's resources.
            if let name = DNSName(s.hostname) {
                for client in sources.map({ $0.flatMap { state.workloadsByIP[$0] } }) {
                    for type in [DNSType.a, DNSType.aaaa] { _ = state.resolveDNS(name, type: type, client: client) }
                }
            }
        }
        for dst in targets.prefix(256) {
            for source in sources {
                for hashKey in keys {
                    guard let d = state.resolve(dst, hashKey: hashKey, from: source) else { continue }
                    checkHealthy(d)
                    if case let .hbone(proxy, authority, _) = d.route {
                        _ = state.isProxyItself(proxy)
                        _ = state.isProxyItself(authority)
                    }
                }
            }
        }
    }

    /// A service picks no unhealthy endpoint unless it allows all (its own waypoint or gateway,
    /// which the route names instead, is not its endpoint).
    static func checkHealthy(_ d: Destination) {
        guard let s = d.service, let w = d.workload, s.waypoint == nil, w.services[s.key] != nil,
              s.loadBalancer?.healthPolicy != .allowAll else { return }
        switch d.route {
        case .hbone, .direct, .lookup: precondition(w.status == .healthy, "service \(s.key) picked unhealthy endpoint \(w.uid)")
        case .throughGateway, .unreachable: break
        }
    }

    static let xdsBaseConfig = try! ProxyConfig.parse(yaml: """
        hbone:
          node: node-a
          rootCertificates: /unused
          certificates: {directory: /unused}
        """, file: "fuzz.yaml", environment: [:])
    static let xdsTrust = try! TrustBundle(roots: [], allowEmpty: true)

    /// A ZDS request from the CNI agent, with one stand-in descriptor: every request gets a
    /// well-formed ACK or NACK, a NACK hands nothing on and closes the descriptor, an ACKed add
    /// takes exactly the one descriptor.
    static func zds(_ bytes: UnsafeRawBufferPointer) {
        var session = ZDSSession()
        let fd: Int32 = 1000
        let outcome = session.handle(Array(bytes), fds: [fd], truncated: false, known: ["a", "b"], isNetns: { $0 == fd })
        guard let reply = try? Istio_Workload_Zds_WorkloadResponse(serializedBytes: outcome.reply), case let .ack(ack)? = reply.payload else {
            preconditionFailure("ZDS reply is not a WorkloadResponse ack")
        }
        precondition(ack.error.isEmpty == (outcome.error == nil), "ZDS ACK/NACK disagrees with the outcome")
        if outcome.error != nil {
            precondition(outcome.actions.isEmpty && outcome.close == [fd], "a NACK acted, or kept a descriptor")
        } else {
            let takes = outcome.actions.filter { if case .add = $0 { true } else { false } }.count
            precondition(takes + outcome.close.count <= 1, "a descriptor handed on twice")
        }
    }

    /// gRPC DATA as the control-plane client reads it, split where the first byte says: whatever
    /// decodes frames back to exactly the bytes consumed, and the reader never holds more than one
    /// capped message. The same bytes as a `grpc-message` are percent-decoded without failing.
    static func grpc(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let input = Array(bytes.dropFirst())
        let chunk = Int(first % 16) + 1
        var reader = GRPCMessageReader(maxMessageBytes: 1 << 16)
        var messages: [[UInt8]] = []
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + chunk)
            do { messages += try reader.feed(input[offset..<end]) } catch { break }
            precondition(reader.buffered <= 5 + (1 << 16), "gRPC reader holds more than one capped message")
            offset = end
        }
        let reframed = messages.flatMap { GRPCMessageReader.frame($0) }
        precondition(Array(input.prefix(reframed.count)) == reframed, "gRPC messages do not re-frame to their bytes")
        _ = GRPCStatus(trailers: [("grpc-status", text(bytes)), ("grpc-message", text(bytes))], httpStatus: Int(first))
    }
}

/// One mTLS connection in memory, established once; each input gets a fresh server session on it.
final class H2ServerHarness: H2SessionDelegate {
    nonisolated(unsafe) static let shared = H2ServerHarness()
    let client: TLSEngine
    let server: TLSEngine
    var session: H2Session?
    var scratch = [UInt8](repeating: 0, count: 1 << 16)
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    init() {
        let pki = try! InMemoryPKI()
        client = try! TLSEngine(context: TLSContext(role: .client, certifiedKey: pki.client, trust: pki.trust),
                                verification: .outbound(expected: [InMemoryPKI.serverID]))
        server = try! TLSEngine(context: TLSContext(role: .server, certifiedKey: pki.server, trust: pki.trust),
                                verification: .inbound(trustDomains: ["cluster.local"]))
        try! TunnelPair.handshake(client: client, server: server)
    }

    func run(_ bytes: UnsafeRawBufferPointer) {
        guard let session = try? H2Session(role: .server, delegate: self) else { return }
        self.session = session
        defer { self.session = nil }
        var input = H2ServerHarness.preface
        input.append(contentsOf: bytes)
        // Through TLS in records of at most 16 KiB, as a peer would send them.
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + 16 * 1024)
            _ = input[offset..<end].withUnsafeBytes { client.write($0) }
            client.takeCiphertext { server.feed($0) }
            offset = end
            var alive = true
            while alive {
                let status = scratch.withUnsafeMutableBytes { server.read(into: $0) }
                guard case let .bytes(n) = status else { break }
                do {
                    try scratch.withUnsafeBytes { try session.receive(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                } catch {
                    alive = false
                }
                _ = try? session.produce { out in _ = server.write(out) }
            }
            if !alive || session.isFinished { break }
        }
        // Whatever the server said goes back to the client side and is dropped there.
        server.takeCiphertext { client.feed($0) }
        while case .bytes = scratch.withUnsafeMutableBytes({ client.read(into: $0) }) {}
    }

    func h2(_ session: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool) {
        let ok = headers[header: ":method"] == "CONNECT" && !endStream
        try? session.respond(stream: stream, status: ok ? 200 : 400)
    }
    func h2(_ session: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool) {}
    func h2(_ session: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer) {
        session.send(stream: stream, bytes)
        session.consume(stream: stream, bytes.count)
    }
    func h2(_ session: H2Session, endOfStream stream: Int32) { session.finish(stream: stream) }
    func h2(_ session: H2Session, closed stream: Int32, errorCode: UInt32) {}
    func h2(_ session: H2Session, drained stream: Int32) {}
    func h2(_ session: H2Session, goaway lastStreamID: Int32, errorCode: UInt32) {}
    func h2PingAcknowledged(_ session: H2Session) {}
}
