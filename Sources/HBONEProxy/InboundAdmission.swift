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
    var authority: SocketAddress?
    var workload: Workload?
    var policy: String?
    /// Dry-run and audit policies that matched (logged, not enforced).
    var observed: [String] = []

    init(headers: [H2Header], endStream: Bool, source: IPAddress, connection c: Connection, state: ProxyState) {
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
        let authority: SocketAddress
        switch SocketAddress.parse(text) {
        case let .success(a): authority = a
        case let .failure(e):
            outcome = refuse(400, .badRequest, "bad :authority \"\(text.prefix(80))\": \(e)")
            return
        }
        self.authority = authority
        guard !endStream else {
            outcome = refuse(400, .badRequest, "CONNECT with END_STREAM")
            return
        }
        let podFallback = authority.ip == c.localAddress.ip && state.workloadsByIP[authority.ip] == nil ? c.podWorkload : nil
        guard let workload = state.localWorkloadsByIP[authority.ip] ?? podFallback else {
            outcome = refuse(503, .unknownDestination, "\(authority.ip) is not a workload on this node")
            return
        }
        self.workload = workload
        // Per-workload listeners: a connection made to one workload's address carries only its tunnels.
        if state.settings.listen.inbound == nil && authority.ip != c.localAddress.ip {
            outcome = refuse(400, .badRequest, ":authority \(authority) is not this connection's destination \(c.localAddress.ip)")
            return
        }
        if workload.identity != c.localIdentity {
            outcome = refuse(400, .badRequest, ":authority \(authority) belongs to \(workload.identity), not \(c.localIdentity)")
            return
        }
        if state.ownPorts.contains(authority.port) {
            outcome = refuse(400, .badRequest, "port \(authority.port) is one of the proxy's own")
            return
        }
        let decision = state.policies.decide(
            .init(source: c.peerIdentity, sourceIP: source, destinationIP: authority.ip, destinationPort: authority.port),
            for: .init(namespace: workload.namespace, labels: workload.labels, policies: workload.authorizationPolicies))
        policy = decision.policy
        observed = decision.observed
        if !decision.allowed { outcome = refuse(401, .denied, "authorization denied: \(decision.reason)") }
    }
}
