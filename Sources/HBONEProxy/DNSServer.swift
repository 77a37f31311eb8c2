import HBONECore
import HBONEConfig
import HBONEDNS
import HBONEEventLoop

/// One worker's DNS proxy, as ztunnel's: UDP and TCP on `hbone.dns.address` (in in-pod mode,
/// 127.0.0.1:15053 and [::1]:15053 inside each pod, where istio-cni sends the pod's DNS). Names of
/// the mesh's services are answered here (`ProxyState.resolveDNS`); everything else is forwarded
/// (`DNSForward`). Each loop binds its own sockets (SO_REUSEPORT) and keeps its queries to itself.
final class DNSServer {
    private unowned let worker: Worker
    private var udp: [Worker.ListenerKey: UDPSocket] = [:]
    private var tcp: [Worker.ListenerKey: any StreamListener] = [:]
    private var forwards: [ObjectIdentifier: DNSForward] = [:]
    private var sessions: [ObjectIdentifier: DNSSession] = [:]
    private var rotation = 0
    private var problemLog = LogThrottle()

    /// Queries forwarded and not answered yet, per loop: past this, SERVFAIL at once (a flood
    /// costs no descriptors beyond it).
    static let maxForwards = 1024
    /// TCP clients open at once, per loop.
    static let maxSessions = 256

    init(worker: Worker) { self.worker = worker }

    private var state: ProxyState { worker.state }
    var stats: DNSStats { worker.stats.dns }

    /// Where to answer, from the current state.
    func wanted() -> [Worker.ListenerKey: InPodWorkload?] {
        guard let address = state.settings.dnsAddress else { return [:] }
        guard state.settings.inPod != nil else { return [Worker.ListenerKey(address: address): InPodWorkload?.none] }
        var out: [Worker.ListenerKey: InPodWorkload?] = [:]
        for (uid, pod) in state.pods {
            var hosts = [address.ip]
            // ztunnel's localhost: ::1 as well for a pod with IPv6.
            if state.settings.dns.address == nil, pod.servesIPv6(state.settings) { hosts.append(IPAddress("::1")!) }
            for h in hosts { out[Worker.ListenerKey(pod: uid, netns: ObjectIdentifier(pod.netns), address: SocketAddress(ip: h, port: address.port))] = pod }
        }
        return out
    }

    /// Binds what is wanted and not bound, closes the rest; a failure in a pod is logged and
    /// counted, the first of the proxy's own is thrown.
    func sync() throws(SystemError) {
        let wanted = self.wanted()
        for (key, socket) in udp where wanted[key] == nil {
            socket.close()
            udp[key] = nil
        }
        for (key, listener) in tcp where wanted[key] == nil {
            listener.close()
            tcp[key] = nil
        }
        var firstError: SystemError?
        let mark = state.packetMark
        for (key, pod) in wanted where udp[key] == nil || tcp[key] == nil {
            do {
                if udp[key] == nil {
                    udp[key] = try UDPSocket(loop: worker.loop, bindingTo: key.address, namespace: pod?.netns, mark: pod == nil ? nil : mark) {
                        [unowned self] bytes, peer in receivedDatagram(Array(bytes), from: peer, on: key, pod: pod)
                    }
                }
                if tcp[key] == nil {
                    let listener = try worker.network.listen(on: key.address, loop: worker.loop, namespace: pod?.netns, mark: pod == nil ? nil : mark) {
                        [unowned self] stream, peer in accept(stream, peer: peer, pod: pod)
                    }
                    listener.onFailure = { [stats = worker.stats] reason in stats.acceptFailures.add(reason) }
                    tcp[key] = listener
                }
            } catch {
                if let pod {
                    log.error("cannot answer DNS in the pod", ["pod": pod.uid, "address": "\(key.address)", "error": "\(error)"])
                    worker.stats.acceptFailures.add("pod_listen")
                } else {
                    log.error("cannot answer DNS", ["address": "\(key.address)", "error": "\(error)"])
                    worker.stats.acceptFailures.add("listen")
                    if firstError == nil { firstError = error }
                }
            }
        }
        if let firstError { throw firstError }
    }

    /// Stops answering (drain): sockets closed, queries in flight and TCP clients dropped.
    func close() {
        for (_, s) in udp { s.close() }
        for (_, l) in tcp { l.close() }
        udp = [:]
        tcp = [:]
        for (_, f) in forwards { f.cancel() }
        forwards = [:]
        for (_, s) in sessions { s.stream.close() }
        sessions = [:]
    }

    private func receivedDatagram(_ bytes: [UInt8], from peer: SocketAddress, on key: Worker.ListenerKey, pod: InPodWorkload?) {
        handle(bytes, transport: .udp, peer: peer, pod: pod) { [weak self] answer in
            guard let self, let socket = udp[key] else { return }
            if !socket.send(answer, to: peer) { problem("send_failed", "the answer could not be sent", peer) }
        }
    }

    private func accept(_ stream: TCPStream, peer: SocketAddress, pod: InPodWorkload?) {
        guard sessions.count < DNSServer.maxSessions else {
            problem("overload", "too many DNS clients over TCP", peer)
            stream.abort()
            return
        }
        let session = DNSSession(server: self, stream: stream, peer: peer, pod: pod, loop: worker.loop)
        sessions[ObjectIdentifier(session)] = session
    }

    func sessionEnded(_ session: DNSSession) { sessions[ObjectIdentifier(session)] = nil }

    /// One message from a client: answered here, forwarded, or (when it is no query) answered
    /// with the error it earns, or dropped when it cannot be answered at all.
    func handle(_ bytes: [UInt8], transport: DNSTransport, peer: SocketAddress, pod: InPodWorkload?, reply: @escaping ([UInt8]) -> Void) {
        let query: DNSQuery
        do {
            query = try DNSQuery(parsing: bytes)
        } catch {
            problem(error.reply == nil ? "not_a_query" : "malformed", error.reason, peer)
            if let answer = DNSAnswer.encode(rejecting: error) { reply(answer) }
            return
        }
        let client = pod?.workload ?? state.workloadsByIP[peer.ip]
        guard DNSServer.admits(peer: peer, client: client, inPod: pod != nil) else {
            problem("unknown_client", "not a workload of the mesh, nor this host", peer)
            return reply(DNSAnswer.encode(answering: query, code: .refused, authoritative: false, records: [], limit: 512))
        }
        let labels = DNSStats.Labels(type: query.type, transport: transport, client: client)
        rotation &+= 1
        let resolution = query.qclass == 1 ? state.resolveDNS(query.name, type: query.type, client: client, rotate: rotation) : .forward
        if case let .answer(records) = resolution {
            stats.request(labels)
            log.debug("dns", ["src.workload": client?.name ?? "unknown", "query": DNSType.name(query.type), "domain": "\(query.name)",
                              "result": "success", "endpoints": "\(records.count)"], target: "dns")
            reply(DNSAnswer.encode(answering: query, code: .noError, authoritative: true, records: records,
                                   limit: transport == .udp ? query.udpLimit : 65_535))
            return
        }
        stats.forwarded(labels)
        let servfail = { reply(DNSAnswer.encode(answering: query, code: .serverFailure, authoritative: false, records: [], limit: 512)) }
        guard forwards.count < DNSServer.maxForwards else {
            problem("overload", "\(forwards.count) queries already forwarded on this loop", peer)
            stats.upstreamDone(labels, nanoseconds: 0, failed: true)
            return servfail()
        }
        let dns = state.settings.dns
        let route = DNSForward.Route(upstreams: dns.upstreams, namespace: pod?.netns, mark: state.packetMark,
                                     timeout: dns.upstreamTimeout.nanoseconds)
        let forward = DNSForward(query: query, transport: transport, route: route, loop: worker.loop, network: worker.network) {
            [unowned self] f, answer, why in
            forwards[ObjectIdentifier(f)] = nil
            stats.upstreamDone(labels, nanoseconds: worker.loop.now &- f.started, failed: answer == nil)
            log.debug("dns", ["src.workload": client?.name ?? "unknown", "query": DNSType.name(f.query.type), "domain": "\(f.query.name)",
                              "result": answer == nil ? "forwarding failed (\(why ?? ""))" : "forwarded"], target: "dns")
            if let answer { reply(answer) } else {
                problem("upstream", why ?? "no answer", peer)
                servfail()
            }
        }
        forwards[ObjectIdentifier(forward)] = forward
        forward.start()
    }

    /// Who may ask: the pod itself (in-pod mode, where only the pod reaches its loopback), this
    /// host (loopback), or a workload the mesh knows. Anyone else is refused, so an address
    /// reachable from outside is no open resolver (nor an amplifier for forged sources).
    static func admits(peer: SocketAddress, client: Workload?, inPod: Bool) -> Bool {
        inPod || client != nil || peer.ip.isLoopback
    }

    private func problem(_ reason: String, _ detail: String, _ peer: SocketAddress) {
        stats.problems.add(reason)
        if let heldBack = problemLog.admit(now: worker.loop.now) {
            log.warn("dns query not answered as asked", ["reason": reason, "detail": detail, "client": "\(peer)",
                                                         "not_logged_since_last_line": "\(heldBack)"])
        }
    }
}

/// A DNS client over TCP: two-byte length, message, any number of them (RFC 7766), answered in the
/// order they finish. At most `maxInFlight` at once (reading pauses beyond); closed after
/// `idleTimeout` with nothing asked, or when the client closes.
final class DNSSession: TCPStreamDelegate {
    let stream: TCPStream
    private unowned let server: DNSServer
    private unowned let loop: EventLoop
    private let peer: SocketAddress
    private let pod: InPodWorkload?
    private var buffer: [UInt8] = []
    private var inFlight = 0
    private var idleTimer: EventLoop.TimerID?
    private var ended = false

    static let maxInFlight = 16
    static let idleTimeout: UInt64 = 10_000_000_000

    init(server: DNSServer, stream: TCPStream, peer: SocketAddress, pod: InPodWorkload?, loop: EventLoop) {
        self.server = server
        self.stream = stream
        self.peer = peer
        self.pod = pod
        self.loop = loop
        stream.delegate = self
        armIdle()
    }

    private func armIdle() {
        loop.cancel(idleTimer)
        idleTimer = loop.schedule(after: DNSSession.idleTimeout) { [weak self] in
            guard let self else { return }
            idleTimer = nil
            if inFlight == 0 { end() } else { armIdle() }
        }
    }

    private func end() {
        guard !ended else { return }
        ended = true
        loop.cancel(idleTimer)
        idleTimer = nil
        stream.close()
        server.sessionEnded(self)
    }

    func tcpStreamConnected(_ stream: TCPStream) {}

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        buffer += bytes
        takeMessages()
    }

    private func takeMessages() {
        while !ended, inFlight < DNSSession.maxInFlight, let message = DNSOverTCP.takeMessage(from: &buffer) {
            inFlight += 1
            armIdle()
            server.handle(message, transport: .tcp, peer: peer, pod: pod) { [weak self] answer in
                guard let self, !ended else { return }
                inFlight -= 1
                stream.write(DNSOverTCP.frame(answer))
                stream.readPaused = false
                takeMessages()
                if stream.readEOF && inFlight == 0 && buffer.count < 2 { end() }
            }
        }
        // Past the limit, the rest waits in the kernel (backpressure), not here.
        stream.readPaused = inFlight >= DNSSession.maxInFlight || buffer.count > 2 + 65_535
    }

    func tcpStreamReadClosed(_ stream: TCPStream) {
        if inFlight == 0 { end() }
    }

    func tcpStream(_ stream: TCPStream, wrote count: Int) {}

    func tcpStream(_ stream: TCPStream, failed errno: Int32) { end() }
}
