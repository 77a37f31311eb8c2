import Testing
import HBONECore
@testable import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

/// In-memory streams behave as the proxy relies on sockets behaving: connect outcomes, bytes in
/// order, half-close, RST, and backpressure at a socket-sized buffer; the virtual clock fires
/// timers at their own time and only when moved.
@Suite struct MemoryNetworkTests {
    final class Pair {
        let loop: EventLoop
        let network: MemoryNetwork
        let client = Recorder()
        let server = Recorder()
        var accepted: TCPStream?
        var stream: TCPStream!
        var listener: (any StreamListener)?

        init(listen: Bool = true) throws {
            loop = try EventLoop()
            loop.useVirtualClock()
            network = MemoryNetwork(loop: loop)
            let address = SocketAddress("10.0.0.2:80")!
            if listen {
                listener = try network.host(IPAddress("10.0.0.2")!).listen(on: address, loop: loop) { [unowned self] s, _ in
                    s.delegate = server
                    accepted = s
                }
            }
            stream = try network.host(IPAddress("10.0.0.1")!).connect(to: address, mark: nil, loop: loop, delegate: client)
            loop.runUntilIdle()
        }
    }

    @Test func connectsAndCarriesBytesBothWaysWithHalfClose() throws {
        let p = try Pair()
        #expect(p.client.connected)
        let accepted = try #require(p.accepted)
        #expect(accepted.peerAddress?.ip == IPAddress("10.0.0.1"))
        #expect(p.stream.localAddress?.ip == IPAddress("10.0.0.1"))
        p.stream.write(Array("ping".utf8))
        p.stream.shutdownWrite()
        p.loop.runUntilIdle()
        #expect(p.server.received == Array("ping".utf8) && p.server.eof)
        accepted.write(Array("pong".utf8))   // the other half is still open
        p.loop.runUntilIdle()
        #expect(p.client.received == Array("pong".utf8) && !p.client.eof)
    }

    /// A pair made on a real loop (no virtual clock), as the proxy makes one for double HBONE:
    /// both ends open at once, bytes and FIN each way, and a close seen by the other end.
    @Test func aMemoryPairRunsOnARealLoop() throws {
        let loop = try EventLoop()
        let (a, b) = TCPStream.memoryPair(loop: loop, local: SocketAddress("10.0.0.1:4000")!, remote: SocketAddress("10.0.0.9:15008")!)
        let ra = Recorder(), rb = Recorder()
        a.delegate = ra
        b.delegate = rb
        #expect(a.state == .open && b.state == .open)
        #expect(a.peerAddress == SocketAddress("10.0.0.9:15008") && b.peerAddress == SocketAddress("10.0.0.1:4000"))
        a.write(Array("hello".utf8))
        a.shutdownWrite()
        spin(loop) { rb.eof }
        #expect(rb.received == Array("hello".utf8))
        b.write(Array("back".utf8))
        spin(loop) { ra.received.count == 4 }
        #expect(ra.received == Array("back".utf8) && !ra.eof)
        b.close()
        spin(loop) { ra.eof }
        #expect(ra.eof)
    }

    @Test func nobodyListeningIsRefused() throws {
        let p = try Pair(listen: false)
        #expect(p.client.failedErrno == ECONNREFUSED)
        #expect(p.stream.state == .closed)
    }

    @Test func aBlackholedAddressNeverAnswers() throws {
        let loop = try EventLoop()
        loop.useVirtualClock()
        let network = MemoryNetwork(loop: loop)
        network.blackhole(SocketAddress("10.0.0.9:80")!)
        let client = Recorder()
        let stream = network.connect(from: SocketAddress("10.0.0.1:5000")!, to: SocketAddress("10.0.0.9:80")!, delegate: client)
        loop.advanceClock(by: 60_000_000_000)
        #expect(!client.connected && client.failedErrno == nil && stream.state == .connecting)
    }

    @Test func abortIsAResetAtThePeer() throws {
        let p = try Pair()
        p.stream.abort()
        p.loop.runUntilIdle()
        #expect(p.server.failedErrno == ECONNRESET)
    }

    /// A reset after the peer's FIN is seen although nothing is read or written any more.
    @Test func aResetAfterTheFINIsStillSeen() throws {
        let p = try Pair()
        p.accepted?.shutdownWrite()
        p.loop.runUntilIdle()
        #expect(p.client.eof && p.client.failedErrno == nil)
        p.accepted?.abort()
        p.loop.runUntilIdle()
        #expect(p.client.failedErrno == ECONNRESET)
        #expect(p.stream.state == .closed)
    }

    @Test func aFullBufferHoldsTheRestUntilThePeerReads() throws {
        let p = try Pair()
        let accepted = try #require(p.accepted)
        accepted.readPaused = true
        p.stream.write([UInt8](repeating: 7, count: MemoryEndpoint.capacity + 1000))
        p.loop.runUntilIdle()
        #expect(p.stream.pendingWriteBytes == 1000)   // the peer's buffer is full
        accepted.readPaused = false
        p.loop.runUntilIdle()
        #expect(p.stream.pendingWriteBytes == 0)
        #expect(p.server.received.count == MemoryEndpoint.capacity + 1000)
    }

    @Test func timersFireAtTheirOwnTimeOnlyWhenTheClockMoves() throws {
        let loop = try EventLoop()
        loop.useVirtualClock(startingAt: 1_000)
        var fired: [UInt64] = []
        loop.schedule(after: 300) { fired.append(loop.now) }
        loop.schedule(after: 100) { fired.append(loop.now) }
        loop.runUntilIdle()
        #expect(fired.isEmpty)
        loop.advanceClock(by: 250)
        #expect(fired == [1_100])
        loop.advanceClock(by: 1_000)
        #expect(fired == [1_100, 1_300])
        #expect(loop.now == 2_250)
    }
}
