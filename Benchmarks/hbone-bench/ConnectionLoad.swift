import CHBONEPosix
import Foundation
import HBONECore
import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

/// The `connections` benchmark's load: `concurrency` application connections in flight at once
/// (connect, the entry's exchange, a 1-byte echo, close), all driven by one thread on epoll, and
/// the echo server behind the chains, likewise one epoll thread. Both share the two cores with the
/// proxies being measured, so they are kept cheap: no thread per connection, no blocking call that
/// needs its own wake-up (what this replaced spent about as much CPU per connection as our two
/// proxies together, and so hid most of the difference between the chains).
struct ConnectionLoad {
    /// One step of a connection's exchange: bytes to send, or a number of bytes to receive and
    /// check.
    enum Step {
        case send([UInt8])
        case expect(Int, check: @Sendable ([UInt8]) -> Bool, what: String)
    }

    let target: SocketAddress
    let source: IPAddress?
    let steps: [Step]
    let concurrency: Int

    /// Runs for `duration` seconds and returns the connections completed and the seconds taken.
    /// The first failure (refused, reset, a wrong reply, 30 s without progress) ends the run.
    func run(duration: Double) throws -> (done: Int, seconds: Double) {
        let epfd = chbone_epoll_create()
        guard epfd >= 0 else { throw BenchError("epoll_create1: \(String(cString: strerror(errno)))") }
        defer { _ = Glibc.close(epfd) }
        var slots = [Slot](repeating: Slot(), count: concurrency)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let end = t0 + UInt64(duration * 1e9)
        var done = 0
        for i in slots.indices { try open(&slots[i], index: i, epfd: epfd) }
        var events = [chbone_event](repeating: chbone_event(), count: 64)
        var inFlight = concurrency
        while inFlight > 0 {
            let n = events.withUnsafeMutableBufferPointer { chbone_epoll_wait(epfd, $0.baseAddress, Int32($0.count), 1000) }
            if n < 0 {
                if errno == EINTR { continue }
                throw BenchError("epoll_wait: \(String(cString: strerror(errno)))")
            }
            let now = DispatchTime.now().uptimeNanoseconds
            for e in events[0..<Int(n)] {
                let i = Int(e.data)
                guard try advance(&slots[i], events: e.events) else { continue }
                // This connection is complete: close it and, while the run lasts, start the next.
                _ = Glibc.close(slots[i].fd)
                done += 1
                if now < end { try open(&slots[i], index: i, epfd: epfd) } else { slots[i].fd = -1; inFlight -= 1 }
            }
            for s in slots where s.fd >= 0 && now > s.progress + 30_000_000_000 {
                throw BenchError("connect \(target): no progress for 30 s (step \(s.step))")
            }
        }
        return (done, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    struct Slot {
        var fd: Int32 = -1
        var connected = false
        var step = 0
        var received: [UInt8] = []
        var progress: UInt64 = 0
    }

    private func open(_ slot: inout Slot, index: Int, epfd: Int32) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        // No TCP_NODELAY: every send follows the reply that acknowledged the one before, so Nagle
        // never holds one back.
        let error = connectIPv4(fd, to: target, from: source)
        if error != 0 && error != EINPROGRESS {
            _ = Glibc.close(fd)
            throw BenchError("connect \(target): \(String(cString: strerror(error)))")
        }
        // Edge-triggered: EPOLLOUT once when the connect completes, EPOLLIN as replies arrive.
        let events = UInt32(truncatingIfNeeded: CHBONE_EV_IN | CHBONE_EV_OUT | CHBONE_EV_RDHUP | CHBONE_EV_ET)
        guard chbone_epoll_add(epfd, fd, events, UInt64(index)) == 0 else {
            let e = errno
            _ = Glibc.close(fd)
            throw BenchError("epoll_ctl: \(String(cString: strerror(e)))")
        }
        slot = Slot(fd: fd, connected: false, step: 0, received: [], progress: DispatchTime.now().uptimeNanoseconds)
    }

    /// Moves a connection on as far as its socket allows; true once its exchange is complete. No
    /// syscall only to learn what the event said: writable without error is connected, and after
    /// a send the reply raises its own event, so there is no read that would find nothing.
    private func advance(_ slot: inout Slot, events: UInt32) throws -> Bool {
        if !slot.connected {
            if events & UInt32(truncatingIfNeeded: CHBONE_EV_ERR | CHBONE_EV_HUP) != 0 {
                let error = Socket.pendingError(slot.fd)
                throw BenchError("connect \(target): \(String(cString: strerror(error == 0 ? ECONNRESET : error)))")
            }
            guard events & UInt32(truncatingIfNeeded: CHBONE_EV_OUT) != 0 else { return false }
            slot.connected = true
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        while slot.step < steps.count {
            switch steps[slot.step] {
            case let .send(bytes):
                let n = bytes.withUnsafeBytes { send(slot.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EAGAIN { return false }    // not connected yet: EPOLLOUT follows
                guard n == bytes.count else { throw BenchError("send to \(target): \(n < 0 ? String(cString: strerror(errno)) : "short")") }
                slot.step += 1
                if slot.step < steps.count, case .expect = steps[slot.step] { return false }   // the reply raises an event
            case let .expect(count, check, what):
                let want = count - slot.received.count
                let n = buffer.withUnsafeMutableBytes { recv(slot.fd, $0.baseAddress, min(want, $0.count), 0) }
                if n < 0 && errno == EAGAIN { return false }
                guard n > 0 else { throw BenchError("\(target): \(what): \(n == 0 ? "closed" : String(cString: strerror(errno)))") }
                slot.received += buffer[0..<n]
                slot.progress = DispatchTime.now().uptimeNanoseconds
                guard slot.received.count == count else { continue }
                guard check(slot.received) else { throw BenchError("\(target): \(what): unexpected reply \(slot.received)") }
                slot.received.removeAll(keepingCapacity: true)
                slot.step += 1
            }
        }
        return true
    }
}

/// Echoes every byte back: one thread on epoll for every connection (a `RelayLoop` whose sockets
/// relay to themselves), closing when the client does.
enum EventEchoServer {
    static func start(_ listener: BlockingListener) throws {
        _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) | O_NONBLOCK)
        let loop = try RelayLoop(listener: listener.fd, target: nil)
        Thread { loop.run() }.start()
    }
}
