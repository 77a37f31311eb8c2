import HBONECore
import HBONEEventLoop

/// A plain TCP-to-TCP connection (outbound to non-mesh destinations, inbound on 15006).
/// Each side is read only while the other side's write queue is below the high-water mark.
final class SpliceTunnel: TCPStreamDelegate {
    unowned let worker: Worker
    var info: ConnectionInfo
    let downstream: TCPStream
    var upstream: TCPStream?
    private var established = false
    private var finished = false
    private var eofs = 0
    var earlyData: [UInt8] = []
    var socksReply = false
    var connectTimer: EventLoop.TimerID?
    var lastActivity: UInt64
    let id: Int

    static let highWater = 256 * 1024

    init(worker: Worker, info: ConnectionInfo, downstream: TCPStream) {
        self.worker = worker
        self.info = info
        self.downstream = downstream
        self.lastActivity = worker.loop.now
        self.id = worker.nextTunnelID()
        downstream.delegate = self
        worker.spliceOpened(self)
    }

    func connect(to dst: SocketAddress) {
        do {
            upstream = try worker.network.connect(to: dst, mark: worker.state.settings.outboundMark, loop: worker.loop, delegate: self)
        } catch {
            fail(ProxyError(.upstream, "connect to \(dst): \(error)", errno: error.errno))
            return
        }
        let timeout = worker.state.settings.timeouts.connect
        connectTimer = worker.loop.schedule(after: timeout.nanoseconds) { [unowned self] in
            connectTimer = nil
            if !established { fail(ProxyError(.upstream, "connect to \(dst) timed out after \(timeout)", errno: ETIMEDOUT)) }
        }
    }

    private func peer(of s: TCPStream) -> TCPStream? { s === downstream ? upstream : downstream }

    func tcpStreamConnected(_ stream: TCPStream) {
        worker.loop.cancel(connectTimer)
        connectTimer = nil
        established = true
        worker.tunnelEstablished(&info)
        if socksReply {
            socksReply = false
            downstream.write(Socks5Parser.reply(Socks5Parser.succeeded))
        }
        if !earlyData.isEmpty {
            info.addSent(earlyData.count)
            stream.write(earlyData)
            earlyData = []
        }
        if downstream.readEOF { stream.shutdownWrite() }
        downstream.readPaused = false
    }

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        lastActivity = worker.loop.now
        guard established, let other = peer(of: stream) else {
            earlyData.append(contentsOf: bytes)
            if earlyData.count >= 64 * 1024 { stream.readPaused = true }
            return
        }
        if stream === downstream { info.addSent(bytes.count) } else { info.addReceived(bytes.count) }
        other.write(bytes)
        if other.pendingWriteBytes >= SpliceTunnel.highWater { stream.readPaused = true }
    }

    func tcpStream(_ stream: TCPStream, wrote count: Int) {
        if stream.pendingWriteBytes < SpliceTunnel.highWater / 2, let other = peer(of: stream) { other.readPaused = false }
        if eofs == 2 && stream.pendingWriteBytes == 0 && (peer(of: stream)?.pendingWriteBytes ?? 0) == 0 { finish(nil) }
    }

    func tcpStreamReadClosed(_ stream: TCPStream) {
        eofs += 1
        guard established else { return }
        peer(of: stream)?.shutdownWrite()
        if eofs == 2 && downstream.pendingWriteBytes == 0 && (upstream?.pendingWriteBytes ?? 0) == 0 { finish(nil) }
    }

    func tcpStream(_ stream: TCPStream, failed errno: Int32) {
        if stream === upstream && !established {
            fail(ProxyError(.upstream, "connect to \(info.dst) failed: \(errnoText(errno))", errno: errno))
        } else {
            fail(ProxyError(stream === downstream ? .downstream : .upstream, "socket error: \(errnoText(errno))"))
        }
    }

    func fail(_ error: ProxyError) {
        if socksReply {
            socksReply = false
            downstream.write(Socks5Parser.reply(Socks5Parser.replyCode(for: error)))
            downstream.flushNow()
        }
        downstream.close()
        upstream?.abort()
        finish(error)
    }

    func terminate(_ reason: ProxyError) {
        downstream.abort()
        upstream?.abort()
        finish(reason)
    }

    private func finish(_ error: ProxyError?) {
        guard !finished else { return }
        finished = true
        worker.loop.cancel(connectTimer)
        downstream.close()
        upstream?.close()
        worker.spliceFinished(self, error: error)
    }
}

#if canImport(Glibc)
import Glibc
#endif
