import Testing
import Synchronization
import HBONECore
import CHBONEPosix
@testable import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

final class Recorder: TCPStreamDelegate {
    var received: [UInt8] = []
    var eof = false
    var connected = false
    var failedErrno: Int32?
    var wrote = 0
    /// Pause the stream after the next bytes arrive (backpressure from the delegate).
    var pauseAfterNextRead = false
    func tcpStreamConnected(_ stream: TCPStream) { connected = true }
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        received += bytes
        if pauseAfterNextRead { stream.readPaused = true; pauseAfterNextRead = false }
    }
    func tcpStreamReadClosed(_ stream: TCPStream) { eof = true }
    func tcpStream(_ stream: TCPStream, wrote count: Int) { wrote += count }
    func tcpStream(_ stream: TCPStream, failed errno: Int32) { failedErrno = errno }
}

func socketPair() -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
    precondition(rc == 0)
    return (fds[0], fds[1])
}

func spin(_ loop: EventLoop, until condition: () -> Bool, passes: Int = 200) {
    for _ in 0..<passes where !condition() { loop.runOnce(timeoutMillis: 10) }
}

@Suite struct EventLoopTests {
    @Test func streamReadsWritesAndSeesHalfClose() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let ra = Recorder(), rb = Recorder()
        let sa = try TCPStream(loop: loop, fd: a, connecting: false, delegate: ra)
        let sb = try TCPStream(loop: loop, fd: b, connecting: false, delegate: rb)
        sa.write(Array("hello".utf8))
        sa.shutdownWrite()
        spin(loop) { rb.eof }
        #expect(rb.received == Array("hello".utf8))
        #expect(rb.eof)
        #expect(ra.wrote == 5)
        // The half-closed side still receives.
        sb.write(Array("back".utf8))
        spin(loop) { ra.received.count == 4 }
        #expect(ra.received == Array("back".utf8))
        sa.close()
        sb.close()
    }

    @Test func dataAndFINTogetherAreBothSeen() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let rb = Recorder()
        let sb = try TCPStream(loop: loop, fd: b, connecting: false, delegate: rb)
        _ = "x".withCString { write(a, $0, 1) }
        shutdown(a, Int32(SHUT_WR))
        spin(loop) { rb.eof }
        #expect(rb.received == [UInt8(ascii: "x")])
        #expect(rb.eof)
        close(a)
        sb.close()
    }

    @Test func pausedStreamResumesAndReadsWhatWaited() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let rb = Recorder()
        let sb = try TCPStream(loop: loop, fd: b, connecting: false, delegate: rb)
        sb.readPaused = true
        _ = "abc".withCString { write(a, $0, 3) }
        for _ in 0..<5 { loop.runOnce(timeoutMillis: 5) }
        #expect(rb.received.isEmpty)
        sb.readPaused = false
        spin(loop) { rb.received.count == 3 }
        #expect(rb.received == Array("abc".utf8))
        close(a)
        sb.close()
    }

    /// A read that drained the socket, then a pause: resuming skips the read that would only say
    /// EAGAIN, yet bytes that came during the pause, or after it, are still read.
    @Test func pauseAfterADrainingReadLosesNothing() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let p = Recorder()
        p.pauseAfterNextRead = true
        let sb = try TCPStream(loop: loop, fd: b, connecting: false, delegate: p)
        _ = "a".withCString { write(a, $0, 1) }
        spin(loop) { p.received.count == 1 }
        #expect(sb.readPaused)
        _ = "b".withCString { write(a, $0, 1) }   // arrives while paused
        for _ in 0..<5 { loop.runOnce(timeoutMillis: 5) }
        #expect(p.received == Array("a".utf8))
        sb.readPaused = false
        spin(loop) { p.received.count == 2 }
        #expect(p.received == Array("ab".utf8))
        // Drained, paused and resumed with nothing waiting: the next bytes still arrive.
        p.pauseAfterNextRead = true
        _ = "c".withCString { write(a, $0, 1) }
        spin(loop) { p.received.count == 3 }
        sb.readPaused = false
        for _ in 0..<3 { loop.runOnce(timeoutMillis: 5) }
        _ = "d".withCString { write(a, $0, 1) }
        spin(loop) { p.received.count == 4 }
        #expect(p.received == Array("abcd".utf8))
        close(a)
        sb.close()
    }

    /// A busy stream keeps its write queue between passes; one quiet for a whole sweep gives it back.
    @Test func writeQueueIsKeptWhileBusyAndGivenBackWhenQuiet() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let ra = Recorder()
        let sa = try TCPStream(loop: loop, fd: a, connecting: false, delegate: ra)
        sa.write([UInt8](repeating: 7, count: 4096))
        spin(loop) { ra.wrote == 4096 }
        #expect(sa.pendingWriteBytes == 0 && sa.writeQueueCapacity >= 4096)
        loop.sweep()                 // wrote since the last sweep: kept
        #expect(sa.writeQueueCapacity >= 4096)
        loop.sweep()                 // quiet for a whole sweep: given back
        #expect(sa.writeQueueCapacity == 0)
        close(b)
        sa.close()
    }

    @Test func connectToClosedPortFails() throws {
        let loop = try EventLoop()
        let listener = try Socket.listen(on: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0))
        let port = Socket.localAddress(listener)!.port
        close(listener)
        let fd = try Socket.connect(to: SocketAddress(ip: IPAddress("127.0.0.1")!, port: port))
        let r = Recorder()
        let s = try TCPStream(loop: loop, fd: fd, connecting: true, delegate: r)
        spin(loop) { r.failedErrno != nil }
        #expect(r.failedErrno == ECONNREFUSED)
        #expect(s.state == .closed)
    }

    @Test func listenerAcceptsAndConnectCompletes() throws {
        let loop = try EventLoop()
        var accepted: [Int32] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0)) { fd, _ in accepted.append(fd) }
        let fd = try Socket.connect(to: listener.address)
        let r = Recorder()
        let s = try TCPStream(loop: loop, fd: fd, connecting: true, delegate: r)
        spin(loop) { r.connected && !accepted.isEmpty }
        #expect(r.connected)
        #expect(accepted.count == 1)
        accepted.forEach { close($0) }
        s.close()
        listener.close()
    }

    /// A TCP peer that half-closed and then reset (killed, or SO_LINGER 0) is noticed at once,
    /// though our side reads nothing more and has nothing to write; before, the stream stayed
    /// open until our next write.
    @Test func aResetAfterTheFINFailsTheStream() throws {
        let loop = try EventLoop()
        var accepted: [Int32] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0)) { fd, _ in accepted.append(fd) }
        defer { listener.close() }
        let fd = try Socket.connect(to: listener.address)
        let r = Recorder()
        let s = try TCPStream(loop: loop, fd: fd, connecting: true, delegate: r)
        spin(loop) { r.connected && !accepted.isEmpty }
        let peer = try #require(accepted.first)
        shutdown(peer, Int32(SHUT_WR))
        spin(loop) { r.eof }
        #expect(r.eof && r.failedErrno == nil)
        var reset = linger(l_onoff: 1, l_linger: 0)
        setsockopt(peer, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
        close(peer)
        spin(loop) { r.failedErrno != nil }
        // Linux reports a reset that arrives after the peer's FIN (our CLOSE_WAIT) as EPIPE.
        #expect(r.failedErrno == EPIPE || r.failedErrno == ECONNRESET)
        #expect(s.state == .closed)
    }

    /// An outbound connection gets keepalive at the first sweep that finds it open, not at connect:
    /// short-lived connections never pay for it, and a long-lived one has it within a second.
    @Test func outboundKeepaliveIsSetAtTheFirstSweep() throws {
        let loop = try EventLoop()
        var accepted: [Int32] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0)) { fd, _ in accepted.append(fd) }
        let r = Recorder()
        loop.sweep()                 // a sweep while still connecting changes nothing
        let s = try SocketNetwork().connect(to: listener.address, mark: nil, loop: loop, namespace: nil, source: nil, delegate: r)
        spin(loop) { r.connected && !accepted.isEmpty }
        #expect(option(s.fd, Int32(IPPROTO_TCP), TCP_NODELAY) == 1)
        #expect(option(s.fd, SOL_SOCKET, SO_KEEPALIVE) == 0)
        loop.sweep()
        #expect(option(s.fd, SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(option(s.fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE) == 180)
        #expect(option(s.fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL) == 180)
        #expect(option(s.fd, Int32(IPPROTO_TCP), TCP_KEEPCNT) == 9)
        // Accepted sockets have it from the listener, from the start.
        #expect(accepted.allSatisfy { option($0, SOL_SOCKET, SO_KEEPALIVE) == 1 })
        accepted.forEach { close($0) }
        s.close()
        listener.close()
    }

    /// The loop's keepalive settings (ztunnel's KEEPALIVE_*, USER_TIMEOUT_ENABLED) reach accepted
    /// sockets through the listener and connected ones at their first sweep; off sets nothing.
    @Test func theLoopsKeepaliveSettingsReachBothKindsOfSocket() throws {
        let loop = try EventLoop()
        var k = TCPKeepalive()
        k.time = .seconds(30)
        k.interval = .seconds(10)
        k.probes = 4
        k.userTimeout = true
        loop.tcpKeepalive = k
        var accepted: [Int32] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0)) { fd, _ in accepted.append(fd) }
        let r = Recorder()
        let s = try SocketNetwork().connect(to: listener.address, mark: nil, loop: loop, namespace: nil, source: nil, delegate: r)
        spin(loop) { r.connected && !accepted.isEmpty }
        loop.sweep()
        for fd in [s.fd] + accepted {
            #expect(option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1)
            #expect(option(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE) == 30)
            #expect(option(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL) == 10)
            #expect(option(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT) == 4)
            #expect(option(fd, Int32(IPPROTO_TCP), chbone_tcp_user_timeout) == 70_000)   // 30 s + 4 × 10 s
        }
        accepted.forEach { close($0) }
        s.close()
        listener.close()
        // Off: the listener's sockets get no keepalive.
        loop.tcpKeepalive.enabled = false
        loop.tcpKeepalive.userTimeout = false
        var quiet: [Int32] = []
        let off = try TCPListener(loop: loop, address: SocketAddress(ip: IPAddress("127.0.0.1")!, port: 0)) { fd, _ in quiet.append(fd) }
        let r2 = Recorder()
        let s2 = try SocketNetwork().connect(to: off.address, mark: nil, loop: loop, namespace: nil, source: nil, delegate: r2)
        spin(loop) { r2.connected && !quiet.isEmpty }
        loop.sweep()
        #expect(([s2.fd] + quiet).allSatisfy { option($0, SOL_SOCKET, SO_KEEPALIVE) == 0 && option($0, Int32(IPPROTO_TCP), chbone_tcp_user_timeout) == 0 })
        quiet.forEach { close($0) }
        s2.close()
        off.close()
    }

    @Test func timersFireInOrderAndCancelledOnesDoNot() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        loop.schedule(after: 20_000_000) { fired.append(2) }
        loop.schedule(after: 5_000_000) { fired.append(1) }
        let cancelled = loop.schedule(after: 10_000_000) { fired.append(99) }
        loop.cancel(cancelled)
        spin(loop) { fired.count == 2 }
        #expect(fired == [1, 2])
    }

    @Test func postedTasksRunOnTheLoopThread() throws {
        let loop = try EventLoop()
        let count = Locked(0)
        let thread = Thread { for _ in 0..<100 { loop.post { count.withLock { $0 += 1 } } } }
        thread.start()
        spin(loop, until: { count.withLock { $0 } == 100 }, passes: 500)
        #expect(count.withLock { $0 } == 100)
    }

    /// A task posted while the loop sleeps in epoll_wait wakes it: each pass below may sleep for
    /// 10 s, so a lost wake-up shows as a pass that ran nothing (or took seconds). Two threads
    /// post at once, so a post often finds the wake-up already pending.
    @Test func aPostWakesTheSleepingLoop() throws {
        let loop = try EventLoop()
        let ran = Locked(0)
        for round in 1...40 {
            let posters = (0..<2).map { _ in
                Thread {
                    usleep(2_000)   // let the loop reach epoll_wait first
                    loop.post { ran.withLock { $0 += 1 } }
                }
            }
            for p in posters { p.start() }
            let start = chbone_monotonic_ns()
            while ran.withLock({ $0 }) < 2 * round && chbone_monotonic_ns() - start < 30_000_000_000 {
                loop.runOnce(timeoutMillis: 10_000)
            }
            #expect(ran.withLock { $0 } == 2 * round)
            #expect(chbone_monotonic_ns() - start < 5_000_000_000, "a posted task waited for the loop's timeout")
        }
    }

    /// `stop()` from another thread ends `run()`, however long the loop would otherwise sleep.
    @Test func stopFromAnotherThreadEndsRun() throws {
        let loop = try EventLoop()
        let finished = DispatchSemaphore(value: 0)
        let runner = Thread {
            loop.run()
            finished.signal()
        }
        runner.start()
        usleep(20_000)
        loop.stop()
        #expect(finished.wait(timeout: .now() + 10) == .success)
    }

    @Test func staleGenerationIsIgnoredAfterFdReuse() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let old = Recorder()
        let s1 = try TCPStream(loop: loop, fd: b, connecting: false, delegate: old)
        s1.close()                          // fd b is free and will be reused
        let (c, d) = socketPair()
        let fresh = Recorder()
        let s2 = try TCPStream(loop: loop, fd: d, connecting: false, delegate: fresh)
        _ = "z".withCString { write(c, $0, 1) }
        spin(loop) { !fresh.received.isEmpty }
        #expect(fresh.received == [UInt8(ascii: "z")])
        #expect(old.received.isEmpty)
        close(a); close(c)
        s2.close()
    }
}

import Foundation

/// An int socket option's value (-1 when it cannot be read).
private func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
    var value: Int32 = -1
    var length = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, level, name, &value, &length)
    return value
}
