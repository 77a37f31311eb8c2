import ArgumentParser
import CHBONEPosix
import Foundation
import HBONECore
import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

/// A relay that does no work: each accepted connection is paired with a connection to `--to` and
/// bytes are copied both ways (epoll, edge-triggered, one read and one write per event), one loop
/// per thread on its own SO_REUSEPORT listener. Two of them in a row are the floor under any
/// two-proxy chain built the same way (thread-per-core epoll loops): the same wake-ups, loopback
/// TCP and syscalls per hop, without TLS, HTTP/2 or policy. `scripts/bench.sh latency` measures
/// it beside our chain and the Go chain, so the latency figures say how much of a round trip is
/// the proxies' own work.
struct Relay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A zero-work TCP relay (the floor under a two-proxy chain).")

    @Option(help: "IP:PORT to listen on.") var listen: String
    @Option(help: "IP:PORT each connection is relayed to.") var to: String
    @Option(help: "Loops (threads), each with its own SO_REUSEPORT listener.") var threads = 2

    func run() throws {
        guard let address = SocketAddress(listen), let target = SocketAddress(to) else { throw ValidationError("addresses are ip:port") }
        let loops = try (0..<threads).map { _ in try RelayLoop(listener: try Socket.listen(on: address, freebind: false), target: target) }
        print("relay \(address) -> \(target), \(threads) loops")
        loops.forEach { loop in Thread { loop.run() }.start() }
        while true { sleep(3600) }
    }
}

/// One epoll loop copying bytes between paired sockets: each accepted connection with a new
/// connection to `target`, or, without a target, with itself (an echo server). It owns its thread
/// once `run()` starts.
final class RelayLoop: @unchecked Sendable {
    let listener: Int32
    let target: SocketAddress?
    let epfd: Int32
    /// The other end of each relayed socket, by file descriptor (itself when echoing).
    var peer = [Int32](repeating: -1, count: 1 << 16)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    /// `listener`: non-blocking and listening. Accepted sockets inherit its TCP_NODELAY.
    init(listener: Int32, target: SocketAddress?) throws {
        self.listener = listener
        self.target = target
        epfd = chbone_epoll_create()
        guard epfd >= 0 else { throw BenchError("epoll_create1: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(listener, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard chbone_epoll_add(epfd, listener, UInt32(truncatingIfNeeded: CHBONE_EV_IN | CHBONE_EV_ET), UInt64(listener)) == 0 else {
            throw BenchError("epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }

    func run() {
        var events = [chbone_event](repeating: chbone_event(), count: 64)
        while true {
            let n = events.withUnsafeMutableBufferPointer { chbone_epoll_wait(epfd, $0.baseAddress, Int32($0.count), -1) }
            if n < 0 { if errno == EINTR { continue } else { return } }
            for e in events[0..<Int(n)] {
                let fd = Int32(truncatingIfNeeded: e.data)
                if fd == listener { acceptAll() } else { relay(from: fd, peerClosed: e.events & UInt32(CHBONE_EV_RDHUP) != 0) }
            }
        }
    }

    private func acceptAll() {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let events = UInt32(truncatingIfNeeded: CHBONE_EV_IN | CHBONE_EV_RDHUP | CHBONE_EV_ET)
        while true {
            let client = chbone_accept(listener, &storage, &length)
            if client < 0 { return }
            guard client < peer.count else { _ = Glibc.close(client); continue }
            guard let target else {
                peer[Int(client)] = client
                if chbone_epoll_add(epfd, client, events, UInt64(client)) != 0 { close(client) }
                continue
            }
            // A blocking connect: on loopback the handshake completes inside the call.
            guard let upstream = try? Socket.connect(to: target), waitConnected(upstream), upstream < peer.count else {
                _ = Glibc.close(client)
                continue
            }
            Socket.tune(upstream, keepalive: nil)
            peer[Int(client)] = upstream
            peer[Int(upstream)] = client
            _ = chbone_epoll_add(epfd, client, events, UInt64(client))
            _ = chbone_epoll_add(epfd, upstream, events, UInt64(upstream))
        }
    }

    /// `Socket.connect` is non-blocking: wait for it here (this relay does nothing else meanwhile).
    private func waitConnected(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 5000) == 1, Socket.pendingError(fd) == 0 else {
            _ = Glibc.close(fd)
            return false
        }
        return true
    }

    /// Copies everything readable on `fd` to its peer; EOF or an error closes both. `peerClosed`:
    /// the sender's FIN is queued, so read on to the 0 (no further edge will come).
    private func relay(from fd: Int32, peerClosed: Bool) {
        let other = peer[Int(fd)]
        guard other >= 0 else { return }
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n < 0 && errno == EAGAIN { return }
            guard n > 0, writeAll(other, count: n) else {
                close(fd)
                if other != fd { close(other) }
                return
            }
            if n < buffer.count && !peerClosed { return }    // a short read drained the socket
        }
    }

    private func close(_ fd: Int32) {
        peer[Int(fd)] = -1
        _ = Glibc.close(fd)
    }

    /// Sends the first `count` bytes of the buffer; a full send buffer waits for room rather than
    /// dropping bytes.
    private func writeAll(_ fd: Int32, count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let w = send(fd, buffer.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
            if w > 0 { offset += w; continue }
            guard w < 0 && errno == EAGAIN else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 30_000) > 0 else { return false }
        }
        return true
    }
}
