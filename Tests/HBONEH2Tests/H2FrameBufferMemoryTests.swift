import Testing
@testable import HBONEH2

/// nghttp2's frame buffer on pages of its own, given back while a session is idle.
@Suite struct H2FrameBufferMemoryTests {
    static func echo(_ p: Pair, _ id: Int32, _ bytes: [UInt8]) throws -> Bool {
        p.s.data[id] = []
        p.c.data[id] = []
        bytes.withUnsafeBytes { p.client.send(stream: id, $0) }
        try p.run()
        bytes.withUnsafeBytes { p.server.send(stream: id, $0) }
        try p.run()
        return p.s.data[id] == bytes && p.c.data[id] == bytes
    }

    @Test func anIdleSessionGivesItsFrameBufferBackAndTakesItAgainForTheNextFrame() throws {
        let p = try Pair()
        #expect(p.client.memory.regionCount == 1 && p.server.memory.regionCount == 1)
        let id = try p.tunnel()
        let payload = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(try Self.echo(p, id, payload))
        // The first sweep after traffic keeps the pages; a sweep with nothing sent since gives them back.
        p.server.releaseIdleMemory()
        #expect(!p.server.frameBufferReleased)
        #expect(p.server.memory.residentRegionBytes == H2FrameBufferMemory.regionLength)
        p.server.releaseIdleMemory()
        p.client.releaseIdleMemory()
        p.client.releaseIdleMemory()
        #expect(p.server.frameBufferReleased && p.client.frameBufferReleased)
        #expect(p.server.memory.residentRegionBytes == 0 && p.client.memory.residentRegionBytes == 0)
        // Full frames through the zeroed pages, both ways, byte for byte.
        #expect(try Self.echo(p, id, payload))
        #expect(!p.server.frameBufferReleased && !p.client.frameBufferReleased)
        #expect(p.server.memory.residentRegionBytes == H2FrameBufferMemory.regionLength)
        #expect(H2Session.frameBufferBytes >= 2 * H2FrameBufferMemory.regionLength)
    }

    /// Only the buffer nghttp2 makes with the session lives on those pages: a decoded header of the
    /// same size later (it sits in the HPACK table with nghttp2's pointers at its start) is plain
    /// malloc, so releasing pages never touches it.
    @Test func laterAllocationsOfTheSameSizeAreNotCaptured() throws {
        var settings = H2Settings()
        settings.maxConcurrentStreams = 100
        let p = try Pair(settings: settings)
        for size in stride(from: H2FrameBufferMemory.chunkLength - 64, through: H2FrameBufferMemory.chunkLength + 8, by: 8) {
            _ = try p.client.connect(authority: "127.0.0.20:8080", headers: [H2Header("x-big", String(repeating: "v", count: size))])
            try p.run()
        }
        #expect(p.client.memory.regionCount == 1 && p.server.memory.regionCount == 1)
        p.server.releaseIdleMemory()
        p.server.releaseIdleMemory()
        let id = try p.client.connect(authority: "127.0.0.20:8080", headers: [H2Header("x-big", String(repeating: "v", count: 16_000))])
        try p.run()
        #expect(p.s.requests.last?.1[header: "x-big"]?.count == 16_000)
        #expect(p.s.requests.last?.0 == id)
    }
}
