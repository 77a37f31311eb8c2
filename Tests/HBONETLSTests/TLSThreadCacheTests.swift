import Foundation
import Testing
@testable import HBONETLS

/// OpenSSL's per-thread block cache (the shim's thread_cache.c). Synchronous tests: the cache
/// belongs to the thread that runs them.
@Suite struct TLSThreadCacheTests {
    static let sanitized = ProcessInfo.processInfo.environment["HBONE_SANITIZED"] != nil

    static func exchange(_ pair: EnginePair, messages: Int) {
        let message = [UInt8](repeating: 0x61, count: 1024)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        for _ in 0..<messages {
            _ = message.withUnsafeBytes { pair.client.write($0) }
            pair.client.takeCiphertext { pair.server.feed($0) }
            _ = pair.server.read(into: buffer)
            _ = message.withUnsafeBytes { pair.server.write($0) }
            pair.server.takeCiphertext { pair.client.feed($0) }
            _ = pair.client.read(into: buffer)
        }
    }

    static func drain() {
        TLSLibrary.tickThreadCache()
        TLSLibrary.tickThreadCache()
    }

    /// Installed in every build but the sanitizer ones (where ASan and TSan must see each block).
    @Test func installedUnlessSanitized() {
        #expect(TLSLibrary.threadCache == !Self.sanitized)
    }

    /// Every request size gets the smallest class that holds it, a freed block files under a class
    /// it holds (never a larger one than its real size), and small classes cost the heap what
    /// plain malloc would (idle connections keep theirs).
    @Test func sizeClassesMatchGlibc() {
        #expect(TLSLibrary.threadCacheSelfCheck() == 0)
    }

    /// Records reuse cached buffers, the cache stays bounded, and an idle thread gives it back.
    @Test(.enabled(if: !sanitized)) func recordBuffersAreReusedBoundedAndReturned() throws {
        let pair = try makePair()
        let (c, s) = pair.run()
        #expect(c == .complete && s == .complete)
        Self.exchange(pair, messages: 200)
        let held = TLSLibrary.threadCacheBytes
        #expect(held > 16 * 1024, "freed record buffers wait in the cache")
        #expect(held <= 1 << 20)
        // Traffic keeps the cache; a tick after traffic does not flush it.
        TLSLibrary.tickThreadCache()
        Self.exchange(pair, messages: 10)
        TLSLibrary.tickThreadCache()
        #expect(TLSLibrary.threadCacheBytes > 0)
        // Two ticks with nothing served in between: given back.
        TLSLibrary.tickThreadCache()
        #expect(TLSLibrary.threadCacheBytes == 0)
    }

    /// A block allocated on one thread may be freed on another: it joins the freeing thread's cache.
    @Test(.enabled(if: !sanitized)) func blocksFreedOnAnotherThreadJoinItsCache() throws {
        final class Box: @unchecked Sendable { var pair: EnginePair? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            box.pair = try? makePair()
            if let pair = box.pair {
                _ = pair.run()
                Self.exchange(pair, messages: 5)
            }
            Self.drain()
            done.signal()
        }
        done.wait()
        Self.drain()
        #expect(TLSLibrary.threadCacheBytes == 0)
        #expect(box.pair?.client.peerIdentity == ledger)
        box.pair = nil
        #expect(TLSLibrary.threadCacheBytes > 0, "the engines' blocks were freed here")
        Self.drain()
    }
}
