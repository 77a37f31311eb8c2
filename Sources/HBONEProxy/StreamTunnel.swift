import HBONECore
import HBONEEventLoop
import HBONEH2

/// One proxied TCP connection carried as one CONNECT stream: a TCP socket on one side (the app's
/// connection outbound, the upstream connection inbound) and an HTTP/2 stream on the other.
/// Flow control is end to end: the socket is read only while the stream's send queue is below its
/// high-water mark, and stream bytes are acknowledged (WINDOW_UPDATE) only once the socket took them.
final class StreamTunnel: StreamOwner, TCPStreamDelegate {
    unowned let worker: Worker
    var info: ConnectionInfo
    var tcp: TCPStream?
    private(set) var connection: HBONEConnection?
    private(set) var streamID: Int32 = 0
    private(set) var established = false
    private var tcpEOF = false
    private var streamClosed = false
    private var finished = false
    private var closeWhenFlushed = false
    /// Bytes written to the socket that did not come from the stream (the SOCKS5 reply).
    private var notFromStream = 0
    /// Outbound: bytes the app sent before the tunnel was up.
    var earlyData: [UInt8] = []
    var lastActivity: UInt64
    /// Outbound SOCKS5: the reply to send once the tunnel is up or has failed.
    var socksReply = false
    var connectTimer: EventLoop.TimerID?
    /// Outbound: opens the CONNECT again on another connection; used once, for a refused stream.
    var reopen: (() -> Void)?
    let id: Int

    init(worker: Worker, info: ConnectionInfo, tcp: TCPStream?) {
        self.worker = worker
        self.info = info
        self.tcp = tcp
        self.lastActivity = worker.loop.now
        self.id = worker.nextTunnelID()
        worker.tunnelOpened(self)
    }

    // MARK: Outbound set-up

    /// Opens the CONNECT stream on a ready pooled connection.
    func attach(_ conn: HBONEConnection, authority: SocketAddress, headers: [H2Header]) {
        guard !finished else { return }
        do {
            streamID = try conn.openStream(authority: authority, headers: headers, owner: self)
            connection = conn
            info.dstIdentity = conn.peerIdentity
        } catch {
            finish(error: error)
            return
        }
        // A peer that takes the CONNECT and never answers (hung, stopped) fails this tunnel at the
        // connect timeout, as an upstream connect would, and no new tunnel goes to that connection.
        let timeout = worker.state.settings.timeouts.connect
        worker.loop.cancel(connectTimer)
        connectTimer = worker.loop.schedule(after: timeout.nanoseconds) { [unowned self, unowned conn] in
            connectTimer = nil
            guard !established, !finished else { return }
            log.warn("no response to CONNECT; the HBONE connection takes no new tunnels", ["peer": "\(conn.peerAddress)",
                     "peer_identity": conn.peerIdentity?.description ?? "-", "dst.addr": "\(info.dst)", "timeout": "\(timeout)"])
            conn.markUnhealthy()
            finish(error: ProxyError(.upstream, "503: no response to CONNECT within \(timeout)", errno: ETIMEDOUT))
        }
    }

    func streamResponse(status: Int) {
        guard !finished else { return }
        worker.loop.cancel(connectTimer)
        connectTimer = nil
        if status == 200 {
            established = true
            worker.tunnelEstablished(&info)
            if socksReply { writeSocksReply(Socks5Parser.succeeded) }
            if !earlyData.isEmpty {
                let data = earlyData
                earlyData = []
                info.addSent(data.count)
                data.withUnsafeBytes { connection?.send(stream: streamID, $0) }
            }
            if tcpEOF { connection?.finish(stream: streamID) } else { tcp?.readPaused = false }
        } else {
            let reason: String
            switch status {
            case 400: reason = "destination proxy answered 400 (bad request)"
            case 401: reason = "destination proxy answered 401 (authorization denied)"
            case 503: reason = "destination proxy answered 503 (upstream connect failed or unknown destination)"
            default: reason = "destination proxy answered \(status)"
            }
            // finish() sends the SOCKS5 reply that fits: 401 → 0x02 not allowed, else 0x04 host unreachable.
            finish(error: ProxyError(status == 401 ? .denied : .upstream, reason))
        }
    }

    private func writeSocksReply(_ code: UInt8) {
        socksReply = false
        let reply = Socks5Parser.reply(code)
        notFromStream += reply.count
        tcp?.write(reply)
    }

    // MARK: Inbound set-up

    func adopt(connection: HBONEConnection, stream: Int32) {
        self.connection = connection
        self.streamID = stream
        connection.adopt(stream: stream, owner: self)
    }

    /// Upstream TCP connected: answer 200 and start moving bytes.
    func tcpStreamConnected(_ stream: TCPStream) {
        worker.loop.cancel(connectTimer)
        connectTimer = nil
        guard !finished, let connection else { return }
        established = true
        worker.tunnelEstablished(&info)
        connection.respond(stream: streamID, status: 200)
    }

    /// Inbound: the upstream connect failed or timed out → 503.
    func upstreamFailed(_ reason: String) {
        guard !finished else { return }
        worker.loop.cancel(connectTimer)
        connectTimer = nil
        tcp?.abort()
        connection?.respond(stream: streamID, status: 503)
        finish(error: ProxyError(.upstream, "503: \(reason)"), resetStream: false)
    }

    // MARK: Bytes

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        lastActivity = worker.loop.now
        guard established, let connection else {
            // Outbound before the 200: hold a bounded amount, then stop reading.
            earlyData.append(contentsOf: bytes)
            if earlyData.count >= 64 * 1024 { stream.readPaused = true }
            return
        }
        info.addSent(bytes.count)
        connection.send(stream: streamID, bytes)
        if connection.isCongested(stream: streamID) { stream.readPaused = true }
    }

    func streamDrained() { tcp?.readPaused = false }

    func streamData(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = worker.loop.now
        info.addReceived(bytes.count)
        tcp?.write(bytes)
    }

    func tcpStream(_ stream: TCPStream, wrote count: Int) {
        var n = count
        if notFromStream > 0 {
            let skip = min(notFromStream, n)
            notFromStream -= skip
            n -= skip
        }
        if n > 0 { connection?.consume(stream: streamID, n) }
        if closeWhenFlushed && stream.pendingWriteBytes == 0 { complete() }
    }

    func tcpStreamReadClosed(_ stream: TCPStream) {
        tcpEOF = true
        // Before the 200 the FIN waits: it is sent after the early data once the tunnel is up.
        guard established else { return }
        connection?.finish(stream: streamID)
    }

    func streamEnded() {
        // The peer half-closed: FIN to our socket after what is queued. Reading continues.
        tcp?.shutdownWrite()
    }

    func streamClosed(errorCode: UInt32) {
        guard !finished else { return }
        if errorCode == H2ErrorCode.refusedStream && !established, let again = reopen {
            // Never processed by the server (RFC 9113 §8.7): safe to send again, once.
            reopen = nil
            connection = nil
            streamID = 0
            again()
            return
        }
        streamClosed = true
        if errorCode == H2ErrorCode.noError && established {
            if let tcp, tcp.pendingWriteBytes > 0 {
                closeWhenFlushed = true
                tcp.shutdownWrite()
            } else {
                complete()
            }
        } else {
            let error = connection?.failure ?? ProxyError(.upstream, errorCode == H2ErrorCode.connectError ? "HBONE connection lost" : "stream reset by peer (code \(errorCode))")
            if established { tcp?.abort() }   // before the 200, finish() answers SOCKS5 and closes
            finish(error: established ? error : ProxyError(error.kind, "tunnel failed before it was established: \(error.reason)", errno: error.errno), resetStream: false)
        }
    }

    func tcpStream(_ stream: TCPStream, failed errno: Int32) {
        if info.direction == .inbound && !established {
            upstreamFailed("upstream connect to \(info.dst) failed: \(errnoText(errno))")
            return
        }
        finish(error: ProxyError(info.direction == .outbound ? .downstream : .upstream, "socket error: \(errnoText(errno))"))
    }

    // MARK: End

    private func complete() {
        tcp?.close()
        finish(error: nil, resetStream: false)
    }

    /// Ends the tunnel once: closes what is left, logs, counts.
    func finish(error: ProxyError?, resetStream: Bool = true) {
        guard !finished else { return }
        finished = true
        reopen = nil
        worker.loop.cancel(connectTimer)
        if let error, tcp?.state != .closed {
            // A SOCKS5 client always learns why (RFC 1928 reply), and the reply must reach it: it is
            // flushed and the socket closed with FIN, since an RST would discard it.
            if socksReply { writeSocksReply(Socks5Parser.replyCode(for: error)) }
            if error.kind == .denied || !established {
                tcp?.flushNow()
                tcp?.close()
            } else {
                tcp?.abort()
            }
        }
        if resetStream && !streamClosed, let connection, streamID != 0 {
            connection.reset(stream: streamID)
        }
        worker.tunnelFinished(self, error: error)
    }

    /// Closes the tunnel now (policy change, idle timeout, drain deadline).
    func terminate(_ reason: ProxyError) {
        if let connection, streamID != 0, !streamClosed { connection.reset(stream: streamID) }
        tcp?.abort()
        finish(error: reason, resetStream: false)
    }
}

#if canImport(Glibc)
import Glibc
#endif
