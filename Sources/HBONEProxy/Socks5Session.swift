import HBONECore
import HBONEEventLoop

/// The SOCKS5 exchange on one accepted connection; hands the socket to a tunnel once it has a target.
final class Socks5Session: TCPStreamDelegate {
    unowned let worker: Worker
    let tcp: TCPStream
    let client: SocketAddress
    private var parser = Socks5Parser()
    private var done = false
    private var timer: EventLoop.TimerID?

    init(worker: Worker, tcp: TCPStream, client: SocketAddress) {
        self.worker = worker
        self.client = client
        self.tcp = tcp
        tcp.delegate = self
        // A client that never finishes the SOCKS exchange is dropped like a stalled TLS handshake.
        timer = worker.loop.schedule(after: worker.state.settings.timeouts.handshake.nanoseconds) { [unowned self] in
            timer = nil
            fail("SOCKS5 exchange timed out")
        }
    }

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        guard !done else { return }
        let step = parser.feed(bytes)
        if !step.send.isEmpty { tcp.write(step.send) }
        switch step.outcome {
        case .needMore:
            return
        case let .fail(reason):
            tcp.flushNow()
            fail(reason)
        case let .connect(target):
            done = true
            worker.loop.cancel(timer)
            worker.socksSessions[ObjectIdentifier(self)] = nil
            tcp.readPaused = true
            let early = parser.takeLeftover()
            switch target {
            case let .address(dst):
                worker.openOutbound(tcp: tcp, src: client, original: dst, destination: worker.state.resolve(dst, hashKey: Int(client.port), from: client.ip), early: early, socks: true)
            case let .domain(host, port):
                if let ip = IPAddress(host) {
                    let dst = SocketAddress(ip: ip, port: port)
                    worker.openOutbound(tcp: tcp, src: client, original: dst, destination: worker.state.resolve(dst, hashKey: Int(client.port), from: client.ip), early: early, socks: true)
                } else if let d = worker.state.resolve(hostname: host, port: port, hashKey: Int(client.port), from: client.ip) {
                    let vip = d.service?.vip(on: worker.state.settings.network).map { SocketAddress(ip: $0, port: port) } ?? SocketAddress(ip: .v4(0), port: port)
                    worker.openOutbound(tcp: tcp, src: client, original: vip, destination: d, early: early, socks: true)
                } else {
                    tcp.write(Socks5Parser.reply(Socks5Parser.hostUnreachable))
                    tcp.flushNow()
                    log.info("SOCKS5 destination unknown", ["src.addr": "\(client)", "host": host])
                    tcp.close()
                }
            }
        }
    }

    private func fail(_ reason: String) {
        done = true
        worker.loop.cancel(timer)
        log.info("SOCKS5 request refused", ["src.addr": "\(client)", "error": reason])
        tcp.close()
        worker.socksSessions[ObjectIdentifier(self)] = nil
    }

    func tcpStreamConnected(_ stream: TCPStream) {}
    func tcpStreamReadClosed(_ stream: TCPStream) { if !done { fail("client closed during SOCKS5 exchange") } }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { if !done { fail(errnoText(errno)) } }
}
