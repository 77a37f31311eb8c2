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
        let listeners = try (0..<threads).map { _ in try Socket.listen(on: address, freebind: false) }
        print("relay \(address) -> \(target), \(threads) loops")
        let threads = listeners.map { fd in Thread { RelayLoop(listener: fd, target: target).run() } }
        threads.forEach { $0.start() }
        while true { sleep(3600) }
    }
}

/// One relay loop. Not Sendable state: it lives on its own thread.
private final class RelayLoop {
    let listener: Int32
    let target: SocketAddress
    let epfd = chbone_epoll_create()
    /// The other end of each relayed socket, by file descriptor.
    var peer = [Int32](repeating: -1, count: 1 << 16)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    init(listener: Int32, target: SocketAddress) {
        self.listener = listener
        self.target = target
    }

    func run() {
        _ = chbone_epoll_add(epfd, listener, UInt32(truncatingIfNeeded: CHBONE_EV_IN | CHBONE_EV_ET), UInt64(listener))
        var events = [chbone_event](repeating: chbone_event(), count: 64)
        while true {
            let n = events.withUnsafeMutableBufferPointer { chbone_epoll_wait(epfd, $0.baseAddress, Int32($0.count), -1) }
            if n < 0 { if errno == EINTR { continue } else { return } }
            for e in events[0..<Int(n)] {
                let fd = Int32(truncatingIfNeeded: e.data)
                if fd == listener { acceptAll() } else { relay(from: fd) }
            }
        }
    }

    private func acceptAll() {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let client = chbone_accept(listener, &storage, &length)
            if client < 0 { return }
            // A blocking connect: on loopback the handshake completes inside the call.
            guard let upstream = try? Socket.connect(to: target), waitConnected(upstream), client < peer.count, upstream < peer.count else {
                _ = Glibc.close(client)
                continue
            }
            Socket.tune(client, keepalive: false)
            Socket.tune(upstream, keepalive: false)
            peer[Int(client)] = upstream
            peer[Int(upstream)] = client
            let events = UInt32(truncatingIfNeeded: CHBONE_EV_IN | CHBONE_EV_RDHUP | CHBONE_EV_ET)
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

    /// Copies everything readable on `fd` to its peer; EOF or an error closes both.
    private func relay(from fd: Int32) {
        let other = peer[Int(fd)]
        guard other >= 0 else { return }
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n < 0 && errno == EAGAIN { return }
            guard n > 0, writeAll(other, count: n) else {
                peer[Int(fd)] = -1
                peer[Int(other)] = -1
                _ = Glibc.close(fd)
                _ = Glibc.close(other)
                return
            }
            if n < buffer.count { return }    // a short read drained the socket
        }
    }

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
