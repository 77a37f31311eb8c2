import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEH2

/// Whether one inbound CONNECT is admitted: a pure function of the request, the connection it came
/// on and the proxy's snapshot, covering every refusal of the reference (400 shape and
/// destination, 503 not here, 401 denied). What it learned on the way (the authority, the
/// destination workload, the deciding policy) comes back with a refusal too, for the access log.
struct InboundAdmission: Equatable {
    enum Outcome: Equatable {
        case accept
        case refuse(status: Int, code: ProxyError.Code, reason: String)
    }

    /// The connection a request arrived on, as admission needs it.
    struct Connection {
        var peerIdentity: SPIFFEID?
        /// The workload address the connection was made to (its SVID was presented).
        var localAddress: SocketAddress
        var localIdentity: SPIFFEID
        /// In-pod mode: the pod the connection was accepted in (it stands for its own address when
        /// neither the file nor xDS names a workload there).
        var podWorkload: Workload? = nil
    }

    var outcome: Outcome
    /// Where the tunnel goes: the CONNECT's address, or the workload's address and the port a
    /// named service maps to.
    var authority: SocketAddress?
    var workload: Workload?
    /// The service a CONNECT named by hostname, and that name as `hostname:port`.
    var service: Service?
    var serviceTarget: String?
    var policy: String?
    /// Dry-run and audit policies that matched (logged, not enforced).
    var observed: [String] = []
    /// Where the tunnel's bytes go: `authority`, unless the workload takes tunnels itself (an
    /// application tunnel's port; a waypoint behind this proxy, at its own address).
    var upstream: SocketAddress?
    /// In-pod mode: the upstream is the pod's loopback at `upstream`'s port (ztunnel's
    /// LOCALHOST_APP_TUNNEL); the PROXY header carries the real addresses.
    var upstreamOnLoopback = false
    /// What the application tunnel sends before the tunnel's bytes.
    var proxyHeader: ProxyProtocolHeader?
    /// The connection's workload is a waypoint taking a tunnel that names another destination.
    var relayed = false

    init(headers: [H2Header], endStream: Bool, source: SocketAddress, connection c: Connection, state: ProxyState) {
        outcome = .accept
        func refuse(_ status: Int, _ code: ProxyError.Code, _ reason: String) -> Outcome { .refuse(status: status, code: code, reason: reason) }
        let method = headers[header: ":method"] ?? ""
        guard method == "CONNECT" else {
            outcome = refuse(400, .badRequest, "method \(method.isEmpty ? "missing" : method) is not CONNECT")
            return
        }
        guard headers[header: ":path"] == nil, headers[header: ":scheme"] == nil else {
            outcome = refuse(400, .badRequest, "CONNECT must not carry :scheme or :path")
            return
        }
        let text = headers[header: ":authority"] ?? ""
        // An address; or, through an east-west gateway (ztunnel's double HBONE), a service as
        // `hostname:port`, on the workload whose address the connection was made to.
        var named: (hostname: String, port: UInt16)?
        switch SocketAddress.parse(text) {
        case let .success(a): self.authority = a
        case let .failure(e):
            guard let n = Self.serviceAuthority(text) else {
                outcome = refuse(400, .badRequest, "bad :authority \"\(text.prefix(80))\": \(e)")
                return
            }
            named = n
        }
        guard !endStream else {
            outcome = refuse(400, .badRequest, "CONNECT with END_STREAM")
            return
        }
        let ip = self.authority?.ip ?? c.localAddress.ip
        let podFallback = state.workloadsByIP[c.localAddress.ip] == nil ? c.podWorkload : nil
        // A waypoint behind this proxy (ztunnel's "waypoint sandwich"): the connection is made to
        // its address, each CONNECT names where that client was going. It takes them when it asked
        // for tunnels (an application tunnel) or is that destination's waypoint.
        let reached = state.localWorkloadsByIP[c.localAddress.ip] ?? podFallback
        if let a = self.authority, a.ip != c.localAddress.ip, let reached {
            relayed = reached.applicationTunnel != nil || state.isWaypoint(reached, of: a.ip, from: source.ip)
        }
        guard let workload = relayed ? reached : state.localWorkloadsByIP[ip] ?? (ip == c.localAddress.ip ? podFallback : nil) else {
            outcome = refuse(503, .unknownDestination, "\(ip) is not a workload on this node")
            return
        }
        if let named {
            switch state.serviceTarget(of: workload, hostname: named.hostname, port: named.port) {
            case let .target(s, target):
                service = s
                serviceTarget = "\(named.hostname):\(named.port)"
                self.authority = SocketAddress(ip: ip, port: target)
            case let .refused(status, reason):
                outcome = refuse(status, status == 503 ? .unknownDestination : .badRequest, reason)
                return
            }
        }
        guard let authority = self.authority else {
            Bug.report("inbound CONNECT admitted without a target")
            outcome = refuse(400, .badRequest, "no target for :authority \"\(text.prefix(80))\"")
            return
        }
        self.workload = workload
        // Per-workload listeners: a connection made to one workload's address carries only its tunnels.
        if !relayed && state.settings.listen.inbound == nil && authority.ip != c.localAddress.ip {
            outcome = refuse(400, .badRequest, ":authority \(authority) is not this connection's destination \(c.localAddress.ip)")
            return
        }
        if workload.identity != c.localIdentity {
            outcome = refuse(400, .badRequest, ":authority \(authority) belongs to \(workload.identity), not \(c.localIdentity)")
            return
        }
        var upstream = SocketAddress(ip: relayed ? c.localAddress.ip : authority.ip, port: authority.port)
        if let tunnel = workload.applicationTunnel {
            upstream.port = tunnel.port ?? authority.port
            if tunnel.protocol == .proxy {
                // PROXY carries no names: a service named by hostname goes as its VIP here (IPv4 first).
                var target = authority
                if let service, let named {
                    let network = state.settings.network
                    guard let vip = service.addresses.first(where: { $0.network == network && $0.ip.isIPv4 })?.ip ?? service.vip(on: network) else {
                        outcome = refuse(503, .unknownDestination, "service \(service.key) has no VIP to name in the PROXY header")
                        return
                    }
                    target = SocketAddress(ip: vip, port: named.port)
                }
                proxyHeader = ProxyProtocolHeader(source: source, destination: target, sourceIdentity: c.peerIdentity)
                upstreamOnLoopback = c.podWorkload != nil && state.settings.inPod?.localhostAppTunnel ?? false
            }
        }
        self.upstream = upstream
        // Each port looked up on its own: a set of the two was an allocation per tunnel.
        let ownPort = state.ownPorts.contains(authority.port) ? authority.port : state.ownPorts.contains(upstream.port) ? upstream.port : nil
        if let ownPort {
            outcome = refuse(400, .badRequest, "port \(ownPort) is one of the proxy's own")
            return
        }
        // As ztunnel: policies see the address the bytes go to (the workload's, at its tunnel's port).
        let decision = state.policies.decide(
            .init(source: c.peerIdentity, sourceIP: source.ip, destinationIP: upstream.ip, destinationPort: upstream.port),
            for: .init(namespace: workload.namespace, labels: workload.labels, policies: workload.authorizationPolicies))
        policy = decision.policy
        observed = decision.observed
        if !decision.allowed { outcome = refuse(401, .denied, "authorization denied: \(decision.reason)") }
    }

    /// `hostname:port` when `text` is one (DNS characters, lowercased; port 1-65535); nil else.
    static func serviceAuthority(_ text: String) -> (hostname: String, port: UInt16)? {
        guard let colon = text.utf8.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        let host = text.utf8[..<colon], portText = text.utf8[text.utf8.index(after: colon)...]
        guard !host.isEmpty, host.count <= 253, portText.count <= 5, !portText.isEmpty,
              host.allSatisfy({ Self.hostnameByte($0) }), portText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let port = UInt16(Substring(portText)), port > 0 else { return nil }
        return (String(decoding: host.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 }, as: UTF8.self), port)
    }

    private static func hostnameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."): return true
        default: return false
        }
    }
}
