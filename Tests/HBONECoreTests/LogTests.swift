import Foundation
import Testing
@testable import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// Levels per scope, and a writer that never blocks its caller when stderr stalls.
@Suite struct LogTests {
    @Test func levelsAllAtOnceOrPerScope() {
        let l = Log()
        #expect(l.levels == "hbone:info,access:info")
        #expect(l.setLevels("debug") == nil && l.levels == "hbone:debug,access:debug")
        #expect(l.setLevels("hbone:warn,access:off") == nil && l.levels == "hbone:warn,access:off")
        #expect(!l.accessEnabled(.error) && l.enabled(.warn) && !l.enabled(.info))
        // Any bad part changes nothing.
        #expect(l.setLevels("hbone:debug,envoy:info")?.contains("unknown scope") == true)
        #expect(l.setLevels("hbone:loud")?.contains("unknown level") == true)
        #expect(l.setLevels("") == "no level given")
        #expect(l.levels == "hbone:warn,access:off")
    }

    /// A sink stays one closure however many lines went through it: it used to gain two
    /// reabstraction thunks per line (a tuple in `Locked`), and after enough lines calling it
    /// overflowed the stack (found by the hbone-peer fuzz target, which sinks the proxy's lines).
    @Test func aSinkDoesNotGrowWithTheLinesItTakes() {
        let l = Log()
        let depths = Locked<[Int]>([])
        l.setSink { _ in
            let depth = Thread.callStackReturnAddresses.count
            depths.withLock { $0.append(depth) }
        }
        for i in 0..<300 { l.info("line \(i)") }
        let d = depths.withLock { $0 }
        #expect(d.count == 300)
        #expect((d.last ?? 0) - (d.first ?? 0) < 8, "the sink's call depth grew from \(d.first ?? 0) to \(d.last ?? 0) frames")
    }

    @Test func aStalledReaderDropsAndCountsLinesInsteadOfBlocking() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // Nobody reads fds[0]: the pipe fills (64 KiB) and the writer thread blocks on write(2).
        let writer = LogWriter(fd: fds[1], capacity: 64 * 1024)
        let line = [UInt8](repeating: 0x61, count: 1000) + [0x0a]
        let started = ContinuousClock.now
        var accepted = 0
        for _ in 0..<1000 where writer.enqueue(line) { accepted += 1 }
        #expect(ContinuousClock.now - started < .seconds(1), "enqueue waited for the stalled reader")
        #expect(writer.dropped.load(ordering: .relaxed) > 0)
        #expect(accepted + Int(writer.dropped.load(ordering: .relaxed)) == 1000)
        // Once the reader drains the pipe, what was queued arrives.
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var received = 0
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        let deadline = Date().addingTimeInterval(5)
        while received < accepted * line.count && Date() < deadline {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { received += n } else { usleep(1000) }
        }
        #expect(received == accepted * line.count)
    }
}
