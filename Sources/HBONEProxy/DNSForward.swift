import HBONECore
import HBONEDNS
import HBONEEventLoop

/// One query sent upstream (a client's, forwarded by the DNS proxy; or the proxy's own lookup of
/// a workload's hostname): over UDP from a fresh socket (a new random port per query, and an
/// ID of the proxy's own, so an off-path guess must hit both), or over TCP when the client asked
/// over TCP (a truncated UDP answer is the client's cue for that). Inside the pod's namespace in
/// in-pod mode, marked, so istio-cni's DNS capture does not send it back here. Each try gets
/// `timeout`; the second goes to the next upstream; then the client gets SERVFAIL.
final class DNSForward: TCPStreamDelegate {
    struct Route {
        var upstreams: [SocketAddress]
        var namespace: NetworkNamespace?
        var mark: Int32?
        var timeout: UInt64
    }

    let query: DNSQuery
    let transport: DNSTransport
    let started: UInt64
    private let route: Route
    private unowned let loop: EventLoop
    private let network: StreamNetwork
    /// Called once: the upstream's answer (with the client's ID back), or nil with why not.
    private let finish: (DNSForward, [UInt8]?, String?) -> Void
    private var sentID: UInt16 = 0
    private var tries = 0
    private var udp: UDPSocket?
    private var stream: TCPStream?
    private var received: [UInt8] = []
    private var timer: EventLoop.TimerID?
    private var done = false

    static let maxTries = 2

    init(query: DNSQuery, transport: DNSTransport, route: Route, loop: EventLoop, network: StreamNetwork,
         finish: @escaping (DNSForward, [UInt8]?, String?) -> Void) {
        self.query = query
        self.transport = transport
        self.route = route
        self.loop = loop
        self.network = network
        self.finish = finish
        started = loop.now
    }

    func start() { nextTry(after: nil) }

    /// Ends at once (drain, a removed pod): the client gets nothing more.
    func cancel() {
        guard !done else { return }
        done = true
        release()
    }

    private func nextTry(after problem: String?) {
        release()
        guard !done else { return }
        guard tries < DNSForward.maxTries, !route.upstreams.isEmpty else {
            end(nil, problem ?? "no upstream nameserver")
            return
        }
        let upstream = route.upstreams[tries % route.upstreams.count]
        tries += 1
        sentID = UInt16.random(in: 0...UInt16.max)
        let message = query.message(withID: sentID)
        do {
            switch transport {
            case .udp:
                let socket = try UDPSocket(loop: loop, connectingTo: upstream, namespace: route.namespace, mark: route.mark) {
                    [unowned self] bytes, _ in _ = answered(Array(bytes))
                }
                udp = socket
                guard socket.send(message) else { return nextTry(after: "\(upstream): the send failed") }
            case .tcp:
                received = []
                let s = try network.connect(to: upstream, mark: route.mark, loop: loop, namespace: route.namespace, source: nil, delegate: self)
                stream = s
                s.write(DNSOverTCP.frame(message))
            }
        } catch {
            return nextTry(after: "\(upstream): \(error)")
        }
        timer = loop.schedule(after: route.timeout) { [unowned self] in
            timer = nil
            nextTry(after: "\(upstream) did not answer in \(route.timeout / 1_000_000) ms")
        }
    }

    /// Over UDP, a datagram that is not the answer (stray or forged) is ignored and the try goes on.
    private func answered(_ response: [UInt8]) -> Bool {
        guard !done, query.isAnswered(by: response, id: sentID) else { return false }
        end(query.restoringID(response), nil)
        return true
    }

    private func end(_ answer: [UInt8]?, _ problem: String?) {
        guard !done else { return }
        done = true
        release()
        finish(self, answer, problem)
    }

    private func release() {
        loop.cancel(timer)
        timer = nil
        udp?.close()
        udp = nil
        if let s = stream {
            stream = nil
            s.delegate = nil
            s.close()
        }
    }

    // MARK: TCP upstream

    func tcpStreamConnected(_ stream: TCPStream) {}

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        received += bytes
        guard let response = DNSOverTCP.takeMessage(from: &received) else { return }
        if !answered(response) { nextTry(after: "the upstream's answer was not for this query") }
    }

    func tcpStreamReadClosed(_ stream: TCPStream) { nextTry(after: "the upstream closed the connection before answering") }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { nextTry(after: "upstream connection: \(errnoText(errno))") }
}
