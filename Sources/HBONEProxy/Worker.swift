import Atomics
import HBONECore
import HBONEIdentity
import HBONEConfig
import HBONEEventLoop
import HBONETLS
import HBONEH2

/// Everything one event loop owns: its listeners, HBONE connections, tunnels and outbound pool.
/// Nothing here is shared with other loops; the only way in is `EventLoop.post`.
final class Worker {
    let loop: EventLoop
    /// Sockets in production; a `MemoryNetwork` host when tests run the path in memory.
    let network: StreamNetwork
    private(set) var state: ProxyState
    let stats: ProxyStats
    let pool = ConnectionPool()
    /// Chains this loop already verified (share-nothing: one cache per loop).
    let chainCache = VerifiedChainCache()
    /// TLS plaintext and gathered records of this loop's HBONE connections (the loop's own scratch
    /// holds the ciphertext being processed).
    let tlsScratch = TLSScratch()
    private var listeners: [ListenerKey: any StreamListener] = [:]
    private(set) var connections: [ObjectIdentifier: HBONEConnection] = [:]
    /// Every open tunnel, HBONE or plain, by id.
    private(set) var tunnels = IntegerMap<Int, Tunnel>()
    var socksSessions: [ObjectIdentifier: Socks5Session] = [:]
    private var tunnelCounter = 0
    private var traceparents = TraceparentGenerator()
    private(set) var draining = false
    private var sweepTimer: EventLoop.TimerID?
    private var drainTimer: EventLoop.TimerID?
    /// Sees every finished connection as it is recorded (tests, and tracing when debugging).
    var recordObserver: ((ConnectionInfo, ProxyError?) -> Void)?
    /// Sees each inbound HBONE connection as it is accepted, before its handshake (tests).
    var inboundConnectionObserver: ((HBONEConnection) -> Void)?
    /// Wall-clock Unix seconds, against which certificates' validity is read (tests move it).
    var wallClock: () -> Int = { Int(time(nil)) }
    private var abuseLog = LogThrottle()
    private var baggageLog = LogThrottle()
    /// The DNS proxy's sockets and queries on this loop.
    lazy var dns = DNSServer(worker: self)
    /// Lookups of workloads' hostnames on this loop (on-demand DNS), and their answers.
    lazy var resolver = HostnameResolver(worker: self)

    init(loop: EventLoop, state: ProxyState, stats: ProxyStats, network: StreamNetwork = SocketNetwork()) {
        self.loop = loop
        self.network = network
        self.state = state
        self.stats = stats
        loop.tcpKeepalive = state.settings.tcpKeepalive
    }

    var openTunnels: Int { tunnels.count }

    // MARK: Listeners

    enum ListenerKind { case inbound, plaintext, socks5, capture }

    /// A listener: an address in this process's namespace, or in a pod's (in-pod mode; the same
    /// address exists once per pod, and a pod handed over again comes with a new namespace).
    struct ListenerKey: Hashable {
        var pod: String? = nil
        var netns: ObjectIdentifier? = nil
        var address: SocketAddress
    }

    /// Every address this worker should listen on, from the current state.
    func wantedListeners() -> [ListenerKey: (kind: ListenerKind, pod: InPodWorkload?)] {
        let l = state.settings.listen
        var wanted: [ListenerKey: (kind: ListenerKind, pod: InPodWorkload?)] = [:]
        if let single = l.inbound {
            wanted[ListenerKey(address: single)] = (.inbound, nil)
        } else if state.settings.inPod == nil {
            for w in state.config.localWorkloads {
                for ip in w.workloadIps { wanted[ListenerKey(address: SocketAddress(ip: ip, port: l.inboundPort))] = (.inbound, nil) }
            }
        }
        if let a = l.inboundPlaintext { wanted[ListenerKey(address: a)] = (.plaintext, nil) }
        if let a = l.socks5 { wanted[ListenerKey(address: a)] = (.socks5, nil) }
        if let a = l.outboundCapture { wanted[ListenerKey(address: a)] = (.capture, nil) }
        if let inPod = state.settings.inPod {
            for (uid, pod) in state.pods {
                let ns = ObjectIdentifier(pod.netns)
                for any in pod.listenerHosts(state.settings) {
                    wanted[ListenerKey(pod: uid, netns: ns, address: SocketAddress(ip: any, port: inPod.outboundPort))] = (.capture, pod)
                    wanted[ListenerKey(pod: uid, netns: ns, address: SocketAddress(ip: any, port: inPod.inboundPlaintextPort))] = (.plaintext, pod)
                    wanted[ListenerKey(pod: uid, netns: ns, address: SocketAddress(ip: any, port: inPod.inboundPort))] = (.inbound, pod)
                }
            }
        }
        return wanted
    }

    /// Binds what is wanted and not bound, closes what is bound and no longer wanted. A listener in
    /// a pod that fails to bind is logged and counted; the first failure of the proxy's own is thrown.
    func syncListeners() throws(SystemError) {
        guard !draining else { return }
        defer { boundAddresses = listeners.filter { $0.key.pod == nil }.map(\.value.address) }   // also when a bind fails midway
        let wanted = wantedListeners()
        for (key, listener) in listeners where wanted[key] == nil {
            listener.close()
            listeners[key] = nil
        }
        var firstError: SystemError?
        for (key, want) in wanted where listeners[key] == nil {
            let (kind, pod) = want
            do {
                let listener = try network.listen(on: key.address, loop: loop, namespace: pod?.netns, mark: pod == nil ? nil : state.packetMark) {
                    [unowned self] stream, peer in
                    accept(kind: kind, stream: stream, peer: peer, listener: key.address, pod: pod)
                }
                listener.onFailure = { [stats] reason in stats.acceptFailures.add(reason) }
                listeners[key] = listener
            } catch {
                // Each failure logged and counted: a workload istiod places on this node at an
                // address the node cannot bind takes no inbound traffic, and says so.
                if let pod {
                    log.error("cannot listen in the pod", ["pod": pod.uid, "address": "\(key.address)", "error": "\(error)"])
                    stats.acceptFailures.add("pod_listen")
                } else {
                    log.error("cannot listen", ["address": "\(key.address)", "error": "\(error)"])
                    stats.acceptFailures.add("listen")
                    if firstError == nil { firstError = error }
                }
            }
        }
        do { try dns.sync() } catch { firstError = firstError ?? error }
        if sweepTimer == nil { scheduleSweep() }
        if let firstError { throw firstError }
    }

    /// In-pod mode: the pods with listeners on this worker (for the config dump).
    var podsListening: Set<String> { Set(listeners.keys.compactMap(\.pod)) }

    /// What the listeners actually bound (a port-0 listener included), kept beside `listeners` so
    /// routing an outbound connection does not rebuild it.
    private(set) var boundAddresses: [SocketAddress] = []

    private func accept(kind: ListenerKind, stream: TCPStream, peer: SocketAddress, listener: SocketAddress, pod: InPodWorkload?) {
        switch kind {
        case .inbound: acceptInbound(stream, peer: peer, listener: listener, pod: pod)
        case .plaintext: acceptPlaintext(stream, peer: peer, pod: pod)
        case .socks5:
            let session = Socks5Session(worker: self, tcp: stream, client: peer)
            socksSessions[ObjectIdentifier(session)] = session
        case .capture: acceptCaptured(stream, peer: peer, pod: pod)
        }
    }

    // MARK: Inbound

    private func acceptInbound(_ tcp: TCPStream, peer: SocketAddress, listener: SocketAddress, pod: InPodWorkload?) {
        // A listener on one workload IP (not a pod's, not the capture address) is the local end
        // itself: no getsockname per connection.
        let fixed = pod == nil && state.settings.listen.inbound == nil && !listener.ip.isUnspecified
        let local = fixed ? listener : (tcp.localAddress ?? listener)
        // Redirected connections name their real destination in SO_ORIGINAL_DST.
        let destination = state.settings.listen.inbound != nil || pod != nil ? (tcp.originalDestination() ?? local) : local
        let fallback = pod?.workload ?? (state.config.localWorkloads.count == 1 ? state.config.localWorkloads.first : nil)
        guard let workload = pod?.workload ?? state.localWorkloadsByIP[destination.ip] ?? fallback else {
            log.warn("inbound connection for an address with no local workload", ["dst.addr": "\(destination)", "src.addr": "\(peer)"])
            tcp.abort()
            return
        }
        guard let contexts = state.identities[workload.identity] else {
            log.warn("inbound connection refused: no certificate", ["identity": workload.identity.description,
                                                                    "reason": state.certificateProblems[workload.identity] ?? "not loaded yet"])
            stats.handshakeFailed(reason: "no_local_certificate")
            tcp.abort()
            return
        }
        do {
            let conn = try HBONEConnection(worker: self, role: .server, tcp: tcp, context: contexts.server,
                                           verification: .inbound(trustDomains: state.trustedDomains),
                                           peer: peer, local: destination)
            conn.pod = pod
            connections[ObjectIdentifier(conn)] = conn
            stats.hboneConnectionsInbound.wrappingIncrement(ordering: .relaxed)
            inboundConnectionObserver?(conn)
        } catch {
            tcp.abort()
            log.warn("inbound connection setup failed", ["error": "\(error)"])
        }
    }

    func handleInboundRequest(connection: HBONEConnection, stream: Int32, headers: [H2Header], endStream: Bool) {
        loop.assertInLoop()
        var info = ConnectionInfo(direction: .inbound, src: connection.peerAddress, dst: connection.localAddress,
                                  hboneAddress: connection.localAddress, srcIdentity: connection.peerIdentity,
                                  dstIdentity: connection.localIdentity, startedAt: loop.now, mutualTLS: true)
        // From another network (through its east-west gateway; ztunnel says which in
        // `x-istio-origin-network`), the client's addresses are that network's: neither the peer's
        // address nor a `for=` claim names a workload here.
        let otherNetwork = headers[header: "x-istio-origin-network"].map { $0.lowercased() != state.settings.network.lowercased() } ?? false
        let source = SourceAttribution(peer: connection.peerAddress, peerIdentity: connection.peerIdentity,
                                       forwarded: otherNetwork ? nil : headers[header: "forwarded"],
                                       workloadsByIP: otherNetwork ? [:] : state.workloadsByIP)
        info.src = source.src
        info.srcWorkload = source.workload
        if let claim = source.rejectedClaim { connection.untrustedAttribution(claim) }
        if source.workload == nil, state.settings.responseBaggage {
            let (baggage, rejected) = ProxyState.peerBaggage(headers.values("baggage"), identity: connection.peerIdentity)
            info.srcBaggage = baggage
            if rejected { stats.untrustedBaggage.wrappingIncrement(ordering: .relaxed) }
        }
        let admission = InboundAdmission(headers: headers, endStream: endStream, source: info.src,
                                         connection: .init(peerIdentity: connection.peerIdentity, localAddress: connection.localAddress,
                                                           localIdentity: connection.localIdentity, podWorkload: connection.pod?.workload),
                                         state: state)
        if let a = admission.authority { info.dst = a }
        if let w = admission.workload {
            info.dstWorkload = w
            info.dstIdentity = w.identity
            if let s = admission.service {
                info.setService(s)
                info.hboneTarget = admission.serviceTarget
            } else if admission.relayed, let a = admission.authority {
                // A waypoint's tunnel: the service the client dialled, not one of the waypoint's own.
                info.setService(state.service(atVIP: a.ip, from: info.src.ip))
            } else if let a = admission.authority {
                let host = headers[header: "forwarded"].flatMap(SourceAttribution.forwardedHost)
                info.setService(state.inboundService(of: w, port: a.port, claimedHost: host))
            }
        }
        info.policy = admission.policy
        if !admission.observed.isEmpty {
            log.info("dry-run/audit policy matched", ["policies": admission.observed.joined(separator: ","),
                                                      "src.identity": connection.peerIdentity?.description ?? "unknown", "dst.addr": "\(info.dst)"])
        }
        if case let .refuse(status, code, reason) = admission.outcome {
            connection.respond(stream: stream, status: status)
            record(&info, error: ProxyError(.downstream, code, "\(status): \(reason)"), wasOpen: false)
            return
        }
        guard var upstream = admission.upstream else {
            Bug.report("inbound CONNECT admitted without an upstream")
            connection.reset(stream: stream, errorCode: H2ErrorCode.internalError)
            return
        }
        let tunnel = Tunnel(worker: self, info: info.take(), downstream: .stream(connection, stream))
        tunnel.upstreamPreamble = admission.proxyHeader?.bytes ?? []
        tunnel.admitted = upstream
        if let pod = connection.pod {
            tunnel.pod = pod
            if admission.upstreamOnLoopback {
                // From loopback to loopback: a foreign source there would be dropped (rp_filter,
                // routing); the PROXY header names the client.
                upstream.ip = upstream.ip.isIPv4 ? .v4(0x7f00_0001) : .v6(0, 1)
            } else {
                // Inside the pod, from the client's own address: the app sees its real peer.
                tunnel.transparentSource = source.src.ip
            }
        }
        tunnel.dial(upstream)
    }

    private func acceptPlaintext(_ downstream: TCPStream, peer: SocketAddress, pod: InPodWorkload?) {
        let dst = downstream.originalDestination() ?? downstream.localAddress
        // In a pod's namespace the destination is the pod itself, also when only the CNI agent named it.
        let podFallback = dst.flatMap { state.workloadsByIP[$0.ip] == nil ? pod?.workload : nil }
        guard let dst, let workload = state.localWorkloadsByIP[dst.ip] ?? podFallback, !state.ownPorts.contains(dst.port) else {
            log.info("plaintext inbound refused: no local workload at destination", ["src.addr": "\(peer)", "dst.addr": dst.map { "\($0)" } ?? "unknown"])
            downstream.abort()
            return
        }
        var info = ConnectionInfo(direction: .inbound, src: peer, dst: dst, dstWorkload: workload, dstIdentity: workload.identity,
                                  startedAt: loop.now, mutualTLS: false)
        info.srcWorkload = state.workloadsByIP[peer.ip]
        info.setService(state.inboundService(of: workload, port: dst.port, claimedHost: nil))
        let decision = state.policies.decide(.init(source: nil, sourceIP: peer.ip, destinationIP: dst.ip, destinationPort: dst.port),
                                             for: .init(namespace: workload.namespace, labels: workload.labels, policies: workload.authorizationPolicies))
        info.policy = decision.policy
        guard decision.allowed else {
            downstream.abort()
            record(&info, error: ProxyError(.downstream, .denied, "authorization denied: \(decision.reason)"), wasOpen: false)
            return
        }
        let tunnel = Tunnel(worker: self, info: info, downstream: .socket(downstream))
        if let pod {
            tunnel.pod = pod
            tunnel.transparentSource = peer.ip
        }
        tunnel.dial(dst)
    }

    // MARK: Outbound

    private func acceptCaptured(_ tcp: TCPStream, peer: SocketAddress, pod: InPodWorkload?) {
        guard let dst = tcp.originalDestination(), dst != tcp.localAddress else {
            log.info("captured connection without an original destination", ["src.addr": "\(peer)"])
            tcp.abort()
            return
        }
        openOutbound(tcp: tcp, src: peer, original: dst, destination: state.resolve(dst, hashKey: Int(peer.port), from: peer.ip), early: [], socks: false, pod: pod)
    }

    /// Routes one application connection: HBONE through the pool, or plain TCP. A destination
    /// known by hostname only is looked up first (`openAfterLookup`).
    func openOutbound(tcp: TCPStream, src: SocketAddress, original: SocketAddress, destination: Destination?, early: [UInt8], socks: Bool,
                      pod: InPodWorkload? = nil) {
        loop.assertInLoop()
        let source = state.localWorkloadsByIP[src.ip] ?? pod?.workload
        var info = ConnectionInfo(direction: .outbound, src: src, dst: original, srcWorkload: source, srcIdentity: source?.identity,
                                  startedAt: loop.now, mutualTLS: false)
        info.dstWorkload = destination?.workload
        info.setService(destination?.service)
        if let destination, case let .lookup(hostname, port, preferIPv6) = destination.route {
            let tunnel = Tunnel(worker: self, info: info, downstream: .socket(tcp), early: early, socksReply: socks)
            openAfterLookup(tunnel, hostname: hostname, port: port, preferIPv6: preferIPv6, destination: destination,
                            src: src, original: original, pod: pod)
            return
        }
        info.setRoute(destination?.route)
        let plan = state.planOutbound(src: src, destination: destination, original: original, bound: boundAddresses)
        if case let .refuse(reason, code) = plan {
            if socks {
                tcp.write(Socks5Parser.reply(code))
                tcp.flushNow()
            }
            tcp.close()
            record(&info, error: Self.refusal(reason, socksCode: code), wasOpen: false)
            return
        }
        let tunnel = Tunnel(worker: self, info: info.take(), downstream: .socket(tcp), early: early, socksReply: socks)
        carry(tunnel, plan: plan, service: destination?.service, src: src, pod: pod)
    }

    /// Opens `tunnel`'s upstream as `plan` says (made already: its downstream is in the tunnel).
    func carry(_ tunnel: Tunnel, plan: OutboundPlan, service: Service?, src: SocketAddress, pod: InPodWorkload?) {
        switch plan {
        case let .refuse(reason, code):
            tunnel.poolFailed(Self.refusal(reason, socksCode: code))
        case let .hbone(source, proxy, authority, expected):
            guard let context = clientContext(source) else { return tunnel.poolFailed(ProxyError(.internal, .config, "no certificate for \(source.identity)")) }
            let headers = outboundHeaders(source: source, src: src, service: service)
            let key = PoolKey(source: source.identity, expected: expected, proxy: proxy, pod: pod?.uid)
            openPooled(tunnel, key: key, authority: authority.description, headers: headers, context: context, src: src, pod: pod)
        case let .throughGateway(source, route):
            guard let context = clientContext(source) else { return tunnel.poolFailed(ProxyError(.internal, .config, "no certificate for \(source.identity)")) }
            openThroughGateway(tunnel, route: route, source: source, headers: outboundHeaders(source: source, src: src, service: service),
                               context: context, src: src, pod: pod)
        case let .direct(dst):
            tunnel.pod = pod   // from inside the pod, marked so its own redirection lets it out
            tunnel.dial(dst)
        }
    }

    /// An outbound connection refused before anything was opened: the SOCKS5 code already says
    /// why: no route, not allowed (a non-local source, a loop to the proxy itself), or something of
    /// ours (no certificate yet).
    static func refusal(_ reason: String, socksCode code: UInt8) -> ProxyError {
        switch code {
        case Socks5Parser.hostUnreachable: ProxyError(.downstream, .unknownDestination, reason)
        case Socks5Parser.notAllowed: ProxyError(.downstream, .badRequest, reason)
        default: ProxyError(.internal, .config, reason)
        }
    }

    /// The TLS client context of a planned HBONE source; the plan only names a source that has a
    /// certificate, so a missing one is a BUG.
    private func clientContext(_ source: Workload) -> TLSContext? {
        guard let contexts = state.identities[source.identity] else {
            Bug.report("outbound plan without a certificate for \(source.identity)")
            return nil
        }
        return contexts.client
    }

    /// baggage, forwarded and traceparent, as the reference client sends them. `forwarded` names
    /// the service addressed (`;host=`), so the destination can attribute the connection to it;
    /// only a hostname made of DNS characters is sent.
    private func outboundHeaders(source: Workload, src: SocketAddress, service: Service?) -> [H2Header] {
        return [
            H2Header("baggage", state.baggageHeader(for: source)),
            H2Header("forwarded", service.flatMap { $0.hasDNSHostname ? "for=\"\(src)\";host=\($0.hostname)" : nil } ?? "for=\"\(src)\"", indexed: false),
            H2Header("traceparent", traceparents.next(), indexed: false),
        ]
    }

    // MARK: HTTP/2 abuse

    /// Counts a peer's HTTP/2 protocol error and warns about it, at most once a second per loop
    /// (with how many were not logged), naming the peer's identity: a flood must not flood the log.
    func h2ProtocolError(_ reason: H2ProtocolError, connection: HBONEConnection, detail: String) {
        stats.h2ProtocolErrors.add(reason.rawValue)
        guard let heldBack = abuseLog.admit(now: loop.now) else { return }
        log.warn("HTTP/2 protocol error from peer", ["reason": reason.rawValue, "detail": detail, "peer": "\(connection.peerAddress)",
                                                     "peer_identity": connection.peerIdentity?.description ?? "-",
                                                     "role": connection.role == .server ? "server" : "client",
                                                     "not_logged_since_last_line": "\(heldBack)"])
    }

    // MARK: Bookkeeping

    func nextTunnelID() -> Int {
        tunnelCounter += 1
        return tunnelCounter
    }

    func tunnelOpened(_ t: Tunnel) {
        tunnels[t.id] = t
        if t.isGatewayLeg { return }
        stats.openTunnels.wrappingIncrement(ordering: .relaxed)
        if t.info.direction == .inbound { stats.openInbound.wrappingIncrement(ordering: .relaxed) }
        if let sockets = openSockets(t) { sockets.wrappingIncrement(ordering: .relaxed) }
    }

    /// The gauge of accepted sockets `t`'s downstream counts in, if it is one.
    private func openSockets(_ t: Tunnel) -> ManagedAtomic<Int>? {
        guard t.downstreamIsSocket else { return nil }
        return t.info.direction == .inbound ? stats.plaintextSocketsInbound : stats.socketsOutbound
    }

    func tunnelFinished(_ t: Tunnel, error: ProxyError?) {
        guard tunnels.removeValue(forKey: t.id) != nil else { return }
        if t.isGatewayLeg {
            // Before its socket's reset reaches the connection it carried: the tunnels on that
            // connection end with the gateway's reason, not just "connection lost".
            if let error, let inner = t.carried {
                inner.carrierFailed(ProxyError(error.side, error.code, "network gateway \(inner.peerAddress): \(error.reason)", errno: error.errno))
            }
            return
        }
        if let sockets = openSockets(t) { sockets.wrappingDecrement(ordering: .relaxed) }
        record(&t.info, error: error, wasOpen: true)
    }

    /// The series a connection counts on, by Istio's labels (hbone-reference §5). Labels a peer's
    /// `baggage` named make a new series only while the proxy holds fewer than
    /// `maxBaggageSeries` of those (see `BaggageSeriesBudget`); past that the connection counts on
    /// the series of what this proxy knows itself (the verified identities and namespace, the rest
    /// "unknown"), and the refusal is counted and logged at most once a second.
    func series(_ info: borrowing ConnectionInfo, flags: String) -> TCPCounters {
        let labels = TCPLabels(info, flags: flags)
        guard TCPLabels.namesBaggage(info) else { return stats.shard.counters(labels) }
        if let c = stats.shard.counters(claimed: labels, limit: state.settings.maxBaggageSeries) { return c }
        stats.baggageSeriesRefused.wrappingIncrement(ordering: .relaxed)
        if let heldBack = baggageLog.admit(now: loop.now) {
            log.warn("metric series named by a peer's baggage are at their limit; this connection is counted without its baggage",
                     ["limit": "\(state.settings.maxBaggageSeries)", "peer_identity": (info.direction == .inbound ? info.srcIdentity : info.dstIdentity)?.description ?? "-",
                      "not_logged_since_last_line": "\(heldBack)"])
        }
        return stats.shard.counters(TCPLabels(ignoringBaggage: info, flags: flags))
    }

    static func responseFlags(_ error: ProxyError?) -> String { error?.responseFlags ?? "-" }

    /// The tunnel carries bytes now: its series counts it as opened and takes its bytes.
    func tunnelEstablished(_ info: inout ConnectionInfo) {
        stats.tunnelEstablished(info.direction)
        let c = series(info, flags: "-")
        c.opened.wrappingIncrement(ordering: .relaxed)
        info.counters = c
    }

    /// The one place a connection's end is recorded: Istio's series (response_flags from the
    /// error; established ones count as closed on the series that counted them opened), the denied
    /// and failed totals, the tunnel gauges and byte totals when it had been open (`wasOpen`: it had
    /// a table entry), and the access-log line. `inout` only so a tunnel's info is read in place:
    /// passed by value out of the tunnel, it was copied (about 50 reference counts per tunnel).
    private func record(_ info: inout ConnectionInfo, error: ProxyError?, wasOpen: Bool) {
        let flags = Worker.responseFlags(error)
        let series = flags == "-" ? (info.counters ?? self.series(info, flags: flags)) : self.series(info, flags: flags)
        if info.counters != nil { series.closed.wrappingIncrement(ordering: .relaxed) }
        if let error {
            series.failed.wrappingIncrement(ordering: .relaxed)
            stats.tunnelsFailed.wrappingIncrement(ordering: .relaxed)
            // Denied by this proxy's policy (a far side's 401 counts there, not here).
            if error.code == .denied && info.direction == .inbound { stats.denied.wrappingIncrement(ordering: .relaxed) }
        }
        if wasOpen {
            stats.openTunnels.wrappingDecrement(ordering: .relaxed)
            if info.direction == .inbound { stats.openInbound.wrappingDecrement(ordering: .relaxed) }
            (info.direction == .inbound ? stats.tunnelsClosedInbound : stats.tunnelsClosedOutbound).wrappingIncrement(ordering: .relaxed)
            stats.bytesSent.wrappingIncrement(by: info.bytesSent, ordering: .relaxed)
            stats.bytesReceived.wrappingIncrement(by: info.bytesReceived, ordering: .relaxed)
        }
        AccessLog.record(info, now: loop.now, error: error)
        recordObserver?(info, error)
    }

    /// An outbound HBONE connection this worker made: closed, recounted and re-checked with the rest.
    func track(_ c: HBONEConnection) {
        connections[ObjectIdentifier(c)] = c
        stats.hboneConnectionsOutbound.wrappingIncrement(ordering: .relaxed)
    }

    func connectionClosed(_ c: HBONEConnection) {
        guard connections.removeValue(forKey: ObjectIdentifier(c)) != nil else { return }
        (c.role == .server ? stats.hboneConnectionsInbound : stats.hboneConnectionsOutbound).wrappingDecrement(ordering: .relaxed)
    }

    var hboneConnectionCount: Int { connections.count }
    var pooledConnectionCount: Int { pool.count }

    /// Opens `tunnel`'s CONNECT through the pool. A stream the server refused unprocessed (GOAWAY
    /// raced the CONNECT: it is draining, or its trust changed) is opened once more, on whatever
    /// connection the pool has then.
    func openPooled(_ tunnel: Tunnel, key: PoolKey, authority: String, headers: [H2Header], context: TLSContext,
                    src: SocketAddress, pod: InPodWorkload?) {
        // Unowned: the tunnel holds this closure and is the only one to call it.
        let open = { [unowned self, unowned tunnel] in
            openStream(for: tunnel, key: key, authority: authority, headers: headers, context: context, src: src, pod: pod)
        }
        tunnel.reopen = open
        open()
    }

    /// Puts `tunnel`'s CONNECT on a pooled connection to `key.proxy`: an open one with room, one
    /// still handshaking (as a waiter), or a new one.
    private func openStream(for tunnel: Tunnel, key: PoolKey, authority: String, headers: [H2Header],
                            context: TLSContext, src: SocketAddress, pod: InPodWorkload?) {
        // Strong: the tunnel may end (its app gave up, the idle timeout) before the connection is
        // ready; it stays allocated until then and, closed, ignores the answer.
        let waiter: (Result<HBONEConnection, ProxyError>) -> Void = { result in
            switch result {
            case let .success(conn):
                conn.reservedStreams -= 1
                tunnel.attach(conn, authority: authority, headers: headers)
            case let .failure(error):
                tunnel.poolFailed(error)
            }
        }
        if let conn = pool.find(key) {
            if conn.phase == .open {
                tunnel.attach(conn, authority: authority, headers: headers)
            } else {
                conn.reservedStreams += 1
                conn.waiters.append(waiter)
            }
            return
        }
        do {
            let tcp = try network.connect(to: key.proxy, mark: state.packetMark, loop: loop, namespace: pod?.netns, source: nil, delegate: nil)
            let conn = try HBONEConnection(worker: self, role: .client, tcp: tcp, context: context,
                                           verification: .outbound(expected: key.expected.all), peer: key.proxy, local: src)
            conn.pod = pod
            track(conn)
            pool.add(conn, key: key)
            stats.pooledConnections.wrappingIncrement(ordering: .relaxed)
            conn.reservedStreams += 1
            conn.waiters.append(waiter)
        } catch {
            tunnel.poolFailed(ProxyError(.upstream, .connect, "connect to \(key.proxy): \(error)", errno: (error as? SystemError)?.errno))
        }
    }

    // MARK: Config changes, idle sweep, drain

    /// A new snapshot: rebind listeners, close connections whose peer's root left the trust bundle,
    /// then re-check every open inbound tunnel against the policies.
    func update(_ newState: ProxyState) {
        loop.assertInLoop()
        let gonePods = Set(state.pods.keys).subtracting(newState.pods.keys)
        let listsChanged = newState.trust.revocationFingerprint != state.trust.revocationFingerprint
        state = newState
        loop.tcpKeepalive = newState.settings.tcpKeepalive   // new sockets; listeners bound before keep theirs
        try? syncListeners()   // each failure is logged and counted there; the other listeners stand
        if !gonePods.isEmpty { drainPods(gonePods) }
        recheckTrust()
        if listsChanged { recheckRevocation() }
        recheckPolicies()
    }

    /// Pods the CNI agent deleted: their listeners are closed already; their HBONE connections get
    /// GOAWAY and, with their tunnels, are cut after `timeouts.drain`.
    private func drainPods(_ uids: Set<String>) {
        let grace = state.settings.timeouts.drain
        for c in Array(connections.values) where c.pod.map({ uids.contains($0.uid) }) ?? false {
            c.startDrain()
            _ = loop.schedule(after: grace.nanoseconds) { [weak c] in
                c?.fail(ProxyError(.internal, .closed, "the pod was removed"))
            }
        }
        for t in Array(tunnels.values) where t.pod.map({ uids.contains($0.uid) }) ?? false {
            _ = loop.schedule(after: grace.nanoseconds) { [weak t] in
                t?.terminate(ProxyError(.internal, .closed, "the pod was removed"))
            }
        }
        if loop.index == 0 {
            log.info("pods removed: draining their connections", ["pods": uids.sorted().joined(separator: ","), "cut_after": "\(grace)"])
        }
    }

    /// A root removed from the bundle is no longer trusted for connections already open either
    /// (inbound, and outbound in the pool): they take no new tunnels at once (GOAWAY; new handshakes
    /// decide), and tunnels still open on them are cut after `timeouts.drain`. A planned root
    /// rotation loses no short tunnels; a distrusted root keeps nothing beyond the drain period.
    /// The same holds for an inbound peer whose trust domain is no longer ours or an alias.
    func recheckTrust() {
        for c in Array(connections.values) where !c.distrusted {
            guard let (why, cut) = distrust(c) else { continue }
            drainDistrusted(c, why: why, cut: cut)
        }
    }

    /// A connection this proxy no longer trusts takes no new tunnel (GOAWAY); its tunnels are cut
    /// after `timeouts.drain` with `cut` as the reason.
    private func drainDistrusted(_ c: HBONEConnection, why: String, cut: String) {
        let grace = state.settings.timeouts.drain
        c.distrusted = true
        log.warn("draining HBONE connection: \(why)",
                 ["peer": "\(c.peerAddress)", "peer_identity": c.peerIdentity?.description ?? "-",
                  "role": c.role == .server ? "server" : "client", "cut_after": "\(grace)"])
        c.startDrain()
        _ = loop.schedule(after: grace.nanoseconds) { [weak c] in
            c?.fail(ProxyError(.internal, .closed, cut))
        }
    }

    /// New revocation lists reach connections already open, as ztunnel's do: one whose peer's chain
    /// (as it presented it) now has a revoked certificate is closed at once with its tunnels
    /// (`CERT_REVOKED`), inbound and pooled outbound alike. A revoked key must stop now, not at
    /// the next handshake.
    /// A connection whose handshake came before any list (lists first configured by a reload) kept
    /// no chain to check: it cannot be shown unrevoked, so it is drained as for a removed root
    /// (GOAWAY, its tunnels cut after `timeouts.drain`; new handshakes are checked), and counted
    /// (ztunnel's `istio_crl_untracked_connections_total`).
    func recheckRevocation() {
        for c in Array(connections.values) {
            switch revocation(c) {
            case nil:
                continue
            case let .revoked(why)?:
                log.warn("closing HBONE connection: its peer's certificate was revoked",
                         ["peer": "\(c.peerAddress)", "peer_identity": c.peerIdentity?.description ?? "-",
                          "role": c.role == .server ? "server" : "client", "reason": why])
                stats.revoked(asServer: c.role == .server)
                c.fail(ProxyError(.internal, .revoked, "peer certificate revoked by CRL: \(why)"))
            case .untracked?:
                guard !c.distrusted else { continue }
                (c.role == .server ? stats.crlUntrackedAsServer : stats.crlUntrackedAsClient).wrappingIncrement(ordering: .relaxed)
                drainDistrusted(c, why: "its handshake predates the revocation lists, so its peer's chain cannot be checked",
                                cut: "revocation lists were configured after its handshake: its peer's chain cannot be checked")
            }
        }
    }

    enum RevocationCheck: Equatable {
        case revoked(String)
        /// Verified before any list was configured: no chain kept to check.
        case untracked
    }

    /// What the current revocation lists say of `c`'s peer (nil: not revoked); checked once per set
    /// of lists (the chain was verified against the lists of its handshake).
    func revocation(_ c: HBONEConnection) -> RevocationCheck? {
        let lists = state.trust.revocationFingerprint
        guard c.revocationChecked != lists else { return nil }
        c.revocationChecked = lists
        guard state.trust.revocationLists != nil, c.peerIdentity != nil else { return nil }
        let chain = c.tls.retainedPeerChain
        if chain.isEmpty { return .untracked }
        return state.trust.revocation(of: chain).map(RevocationCheck.revoked)
    }

    /// Why the current snapshot no longer trusts `c`'s verified peer (for the log, and for the cut),
    /// or nil. Also asked when a handshake completes: one begun under an earlier snapshot was
    /// verified with that snapshot's roots and trust domains.
    func distrust(_ c: HBONEConnection) -> (why: String, cut: String)? {
        if let anchor = c.tls.trustAnchor, !state.trust.contains(anchor: anchor) {
            return ("its peer's root left the trust bundle", "the peer's root was removed from the trust bundle")
        }
        if c.role == .server, let id = c.peerIdentity, !state.trustedDomains.contains(id.trustDomain) {
            return ("its peer's trust domain is no longer trusted", "the peer's trust domain was removed from the trusted ones")
        }
        return nil
    }

    /// Inbound tunnels, HBONE and plaintext alike (a plaintext one has no source identity), are
    /// admitted again under the new snapshot: the destination must still be the workload they were
    /// admitted to, decided with what the snapshot now says of it (its labels, and the policies
    /// istiod binds to it by name), else the tunnel closes. Deciding with the workload as it was at
    /// admission would keep a tunnel open under a DENY that selects its workload only from now on.
    /// A tunnel already judged under the same policies against the same workload is skipped: most
    /// snapshots are xDS pushes about other workloads, and each decision costs 0.3-0.4 µs, per open
    /// inbound tunnel, on every loop.
    func recheckPolicies() {
        var closing: [(Tunnel, ProxyError)] = []
        for t in tunnels.values where t.info.direction == .inbound {
            guard let admitted = t.info.dstWorkload else { continue }
            // A pod the CNI agent removed: `drainPods` cuts its tunnels after the drain period.
            if let pod = t.pod, state.pods[pod.uid] == nil { continue }
            let dst = t.admitted ?? t.info.dst
            guard let w = currentInboundWorkload(at: dst.ip, pod: t.pod), w.uid == admitted.uid, w.identity == admitted.identity else {
                log.info("closing tunnel: its destination is no longer that workload on this node",
                         ["dst.addr": "\(dst)", "dst.workload": admitted.uid])
                closing.append((t, ProxyError(.internal, .closed, "closed: \(dst.ip) is no longer workload \(admitted.uid) on this node")))
                continue
            }
            if let judged = t.policyJudged, judged.generation == state.policyGeneration, judged.workload == w { continue }
            stats.policyRechecks.wrappingIncrement(ordering: .relaxed)
            let decision = state.policies.decide(
                .init(source: t.info.srcIdentity, sourceIP: t.info.src.ip, destinationIP: dst.ip, destinationPort: dst.port),
                for: .init(namespace: w.namespace, labels: w.labels, policies: w.authorizationPolicies))
            if decision.allowed {
                t.policyJudged = (state.policyGeneration, w)
            } else {
                log.info("closing tunnel denied after policy change", ["src.identity": t.info.srcIdentity?.description ?? "unknown",
                                                                       "dst.addr": "\(t.info.dst)", "reason": decision.reason])
                t.info.policy = decision.policy   // the access log names the policy that closed it
                closing.append((t, ProxyError(.internal, .denied, "closed by policy change: \(decision.reason)")))
            }
        }
        // Closing removes a tunnel from `tunnels`: not while iterating it.
        for (t, error) in closing { t.terminate(error) }
    }

    /// The local workload at `ip` in the current snapshot, as admission finds it: by address, else
    /// (in-pod mode, an address no workload claims) the pod the tunnel was accepted in.
    private func currentInboundWorkload(at ip: IPAddress, pod: InPodWorkload?) -> Workload? {
        if let w = state.localWorkloadsByIP[ip] { return w }
        guard state.workloadsByIP[ip] == nil, let pod else { return nil }
        return state.pods[pod.uid]?.workload
    }

    /// Idle tunnels close after `timeouts.idle` with no bytes either way; an idle loop gives its
    /// OpenSSL block cache back to the heap, idle HBONE connections their frame buffers and stream
    /// send buffers, and the tunnel and stream tables what a burst grew them to (idle sockets give
    /// their write queues back in the loop's own sweep).
    private func scheduleSweep() {
        sweepTimer = loop.schedule(after: 1_000_000_000) { [unowned self] in
            sweepTimer = nil
            TLSLibrary.tickThreadCache()
            for c in connections.values { c.releaseIdleMemory() }
            tunnels.shrinkIfSparse()
            if let idle = state.settings.timeouts.idle?.nanoseconds {
                let now = loop.now
                for t in Array(tunnels.values) where now - t.lastActivity > idle {
                    t.terminate(ProxyError(.internal, .idle, "idle for longer than \(state.settings.timeouts.idle!)"))
                }
            }
            scheduleSweep()
        }
    }

    /// Stops accepting at once and sends GOAWAY on every HBONE connection; open tunnels go on until
    /// `deadline` (nanoseconds from now), when whatever is left is closed.
    func startDrain(deadline: UInt64) {
        loop.assertInLoop()
        guard !draining else { return }
        draining = true
        drainTimer = loop.schedule(after: deadline) { [unowned self] in
            drainTimer = nil
            if openTunnels > 0 { log.info("drain deadline reached", ["open_tunnels": "\(openTunnels)"]) }
            closeAll()
        }
        for (_, l) in listeners { l.close() }
        listeners = [:]
        boundAddresses = []
        dns.close()
        for (_, s) in socksSessions { s.tcp.close() }
        socksSessions = [:]
        for c in Array(connections.values) { c.startDrain() }
    }

    /// The drain deadline passed: close whatever is left.
    func closeAll() {
        loop.assertInLoop()
        loop.cancel(drainTimer)
        drainTimer = nil
        for t in Array(tunnels.values) { t.terminate(ProxyError(.internal, .closed, "closed at the drain deadline")) }
        for c in Array(connections.values) { c.close() }
        dns.close()
        resolver.cancelAll()
        loop.cancel(sweepTimer)
    }
}


#if canImport(Glibc)
import Glibc
#endif
