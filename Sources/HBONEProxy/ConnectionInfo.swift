import HBONECore
import HBONEIdentity
import HBONEConfig

/// The facts of one proxied connection, for the access log and metrics.
struct ConnectionInfo {
    enum Direction: String { case inbound, outbound }

    var direction: Direction
    var src: SocketAddress
    var dst: SocketAddress
    var hboneAddress: SocketAddress?
    /// The CONNECT's target when it named a service (`hostname:port`), logged as it came.
    var hboneTarget: String?
    var srcWorkload: Workload?
    /// What an unknown source said of itself (`baggage`), for its labels only.
    var srcBaggage: Baggage?
    var srcIdentity: SPIFFEID?
    var dstWorkload: Workload?
    /// What an unknown destination said of itself in its 200's `baggage`, for its labels only.
    var dstBaggage: Baggage?
    var dstIdentity: SPIFFEID?
    /// The destination service's hostname (logged), name and namespace (metric labels).
    var dstService: String?
    var dstServiceName: String?
    var dstServiceNamespace: String?
    var startedAt: UInt64
    var bytesSent: UInt64 = 0       // towards the destination
    var bytesReceived: UInt64 = 0   // back from the destination
    var mutualTLS: Bool
    var policy: String?
    /// The metric series bytes are counted on (set once the tunnel is established).
    var counters: TCPCounters?

    /// Moves the facts out, leaving only the direction and addresses behind: handing a local
    /// `var info` to a new tunnel otherwise copied it (this compiler cannot `consume` it there),
    /// about 50 reference counts per tunnel.
    mutating func take() -> ConnectionInfo {
        var taken = ConnectionInfo(direction: direction, src: src, dst: dst, startedAt: startedAt, mutualTLS: mutualTLS)
        swap(&self, &taken)
        return taken
    }

    /// Bytes that went towards the destination (Istio's received_bytes: from the downstream side).
    mutating func addSent(_ n: Int) {
        bytesSent += UInt64(n)
        counters?.received.wrappingIncrement(by: UInt64(n), ordering: .relaxed)
    }

    /// Bytes that came back from the destination (Istio's sent_bytes).
    mutating func addReceived(_ n: Int) {
        bytesReceived += UInt64(n)
        counters?.sent.wrappingIncrement(by: UInt64(n), ordering: .relaxed)
    }

    /// The service the connection is attributed to (nil: none).
    mutating func setService(_ s: Service?) {
        dstService = s?.hostname
        dstServiceName = s?.name
        dstServiceNamespace = s?.namespace
    }

    /// Where an outbound connection goes, as its route says (the address the client dialled stays
    /// for a route that names none: unreachable, or a hostname not looked up yet).
    mutating func setRoute(_ route: Destination.Route?) {
        switch route {
        case let .hbone(proxy, authority, _)?:
            dst = authority
            hboneAddress = proxy
            mutualTLS = true
        case let .throughGateway(route)?:
            hboneAddress = route.gateway
            hboneTarget = route.target
            mutualTLS = true
        case let .direct(address)?:
            dst = address
        case .unreachable?, .lookup?, nil:
            break
        }
    }
}

/// One "connection complete" line per finished connection, with the reference's field names.
enum AccessLog {
    static func record(_ info: ConnectionInfo, now: UInt64, error: ProxyError?) {
        guard log.accessEnabled(.info) else { return }
        var fields: [(String, String)] = [
            ("src.addr", "\(info.src)"),
            ("src.workload", info.srcWorkload?.name ?? "unknown"),
            ("src.namespace", info.srcWorkload?.namespace ?? info.srcIdentity?.namespace ?? "unknown"),
            ("src.identity", info.srcIdentity?.description ?? "unknown"),
            // The clusters as the metrics name them (ztunnel logs them since 1.31): a workload this
            // proxy knows, else what the peer's baggage said.
            ("src.cluster", AccessLog.known(info.srcWorkload?.clusterId) ?? AccessLog.known(info.srcBaggage?.clusterId) ?? "unknown"),
        ]
        // As ztunnel logs them: dst.addr is where the connection went (the peer's :15008 for
        // HBONE), dst.hbone_addr the target inside the tunnel.
        if let h = info.hboneAddress {
            fields += [("dst.addr", "\(h)"), ("dst.hbone_addr", info.hboneTarget ?? "\(info.dst)")]
        } else {
            fields.append(("dst.addr", "\(info.dst)"))
        }
        fields += [
            ("dst.service", info.dstService ?? "unknown"),
            ("dst.workload", info.dstWorkload?.name ?? "unknown"),
            ("dst.namespace", info.dstWorkload?.namespace ?? "unknown"),
            ("dst.identity", info.dstIdentity?.description ?? "unknown"),
            ("dst.cluster", AccessLog.known(info.dstBaggage?.clusterId) ?? AccessLog.known(info.dstWorkload?.clusterId) ?? "unknown"),
            ("direction", info.direction.rawValue),
            ("bytes_sent", String(info.direction == .outbound ? info.bytesSent : info.bytesReceived)),
            ("bytes_recv", String(info.direction == .outbound ? info.bytesReceived : info.bytesSent)),
            ("duration", "\((now - info.startedAt) / 1_000_000)ms"),
        ]
        if let p = info.policy { fields.append(("authorization_policy", p)) }
        if let error { fields += [("error", error.reason), ("error.side", error.side.rawValue), ("error.code", error.code.rawValue)] }
        // As ztunnel: a failed connection's line is at error level (alerts key on it).
        log.emit(error == nil ? .info : .error, "access", "connection complete", fields)
    }

    /// nil for a value that is absent or empty (a workload with no cluster set).
    static func known(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }
}
