import CNghttp2
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// The allocator one nghttp2 session uses (its `nghttp2_mem`): plain malloc, except for the
/// outbound frame buffer, which goes on pages of its own so an idle connection can give them back.
///
/// Why: nghttp2 1.52 allocates a 16,394-byte frame buffer when a session is made (as
/// `realloc(NULL, n)`) and keeps it for
/// the session's life, though it only holds frames between `nghttp2_session_mem_send` calls. It
/// was a third of an idle HBONE connection's heap (16 of 46 KiB) with no option to size it. Once
/// a session has had nothing to send for a sweep (about a second), `release()` hands the pages to
/// the kernel (MADV_DONTNEED: they read as zeros and are faulted in again on the next frame).
/// Regions are reused through a small process-wide pool, so a new connection costs no mmap.
final class H2FrameBufferMemory {
    /// NGHTTP2_FRAMEBUF_CHUNKLEN: a 9-byte frame header, a pad-length byte and 16,384 bytes of payload.
    static let chunkLength = 9 + 1 + 16_384
    /// Whole pages, so releasing them touches no other allocation.
    static let regionLength = (chunkLength + 4095) / 4096 * 4096
    static let poolLimit = 64

    private struct Pool {
        var free: [(region: UnsafeMutableRawPointer, resident: Bool)] = []
        /// Bytes of frame-buffer pages that may be resident: in use and not released, or pooled.
        var residentBytes = 0
    }

    private static let pool = Locked(Pool())

    /// Frame-buffer bytes that may be resident (counted into the proxy's heap figures).
    static var residentBytes: Int { pool.withLock { $0.residentBytes } }

    /// This session's frame-buffer region (nghttp2 keeps one chunk; more for a large header block
    /// are plain malloc and freed once sent).
    private var regions: [UnsafeMutableRawPointer] = []
    /// Set only around `nghttp2_session_*_new3`: the one chunk-sized allocation made then is the
    /// frame buffer. Later allocations of that size may be anything — a decoded header in the HPACK
    /// table is one, with nghttp2's own pointers at its start — and must never be released.
    var capturing = false
    private(set) var released = false
    var regionCount: Int { regions.count }
    /// What this session adds to `residentBytes`.
    var residentRegionBytes: Int { released ? 0 : regions.count * Self.regionLength }

    /// The `nghttp2_mem` to hand to `nghttp2_session_*_new3`; nghttp2 copies it. `mem_user_data`
    /// is this object, unretained: the H2Session holds it until after `nghttp2_session_del`.
    var mem: nghttp2_mem {
        nghttp2_mem(mem_user_data: Unmanaged.passUnretained(self).toOpaque(),
                    malloc: { size, user in H2FrameBufferMemory.with(user) { $0.allocate(size) } },
                    free: { pointer, user in H2FrameBufferMemory.with(user) { $0.deallocate(pointer) } },
                    calloc: { count, size, user in
                        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
                        if overflow { return nil }
                        return H2FrameBufferMemory.with(user) { memory in
                            // Fresh mmap pages are zero; a pooled region may not be.
                            if memory.capturing, bytes == H2FrameBufferMemory.chunkLength, let region = memory.allocate(bytes) {
                                region.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
                                return region
                            }
                            return Glibc.calloc(count, size)
                        }
                    },
                    realloc: { pointer, size, user in H2FrameBufferMemory.with(user) { $0.reallocate(pointer, size) } })
    }

    /// Calls `body` with the memory behind `user` without retaining it: the H2Session holds it
    /// for as long as nghttp2 may allocate (a retain and a release per nghttp2 allocation and
    /// free were ~50 reference-count operations per tunnel).
    @inline(__always) private static func with<R>(_ user: UnsafeMutableRawPointer?, _ body: (H2FrameBufferMemory) -> R) -> R {
        Unmanaged<H2FrameBufferMemory>.fromOpaque(user!)._withUnsafeGuaranteedRef(body)
    }

    private func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        guard capturing, size == Self.chunkLength else { return Glibc.malloc(size) }
        guard let region = Self.takeRegion() else { return Glibc.malloc(size) }
        regions.append(region)
        return region
    }

    private func deallocate(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        guard let i = regions.firstIndex(of: pointer) else { return Glibc.free(pointer) }
        regions.remove(at: i)
        Self.giveBack(pointer, resident: !released)
    }

    private func reallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        // nghttp2 makes its frame buffer with realloc(NULL, chunk length) (nghttp2_buf_reserve).
        guard let pointer else { return allocate(size) }
        guard regions.contains(pointer) else { return Glibc.realloc(pointer, size) }
        // nghttp2 does not grow frame-buffer chunks; handled anyway by moving to malloc.
        guard let moved = Glibc.malloc(size) else { return nil }
        moved.copyMemory(from: pointer, byteCount: min(size, Self.chunkLength))
        deallocate(pointer)
        return moved
    }

    /// Gives the regions' pages back to the kernel. Only while nghttp2 holds no frame in them
    /// (the caller checks that the session has nothing to send).
    func release() {
        guard !released, !regions.isEmpty else { return }
        for region in regions { _ = madvise(region, Self.regionLength, MADV_DONTNEED) }
        released = true
        let bytes = regions.count * Self.regionLength
        Self.pool.withLock { $0.residentBytes -= bytes }
    }

    /// The session is about to write frames again: its pages count as resident from now.
    func reactivate() {
        guard released else { return }
        released = false
        let bytes = regions.count * Self.regionLength
        Self.pool.withLock { $0.residentBytes += bytes }
    }

    private static func takeRegion() -> UnsafeMutableRawPointer? {
        let pooled = pool.withLock { p -> UnsafeMutableRawPointer? in
            guard let (region, resident) = p.free.popLast() else { return nil }
            if !resident { p.residentBytes += regionLength }
            return region
        }
        if let pooled { return pooled }
        let region = mmap(nil, regionLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let region, region != MAP_FAILED else { return nil }
        pool.withLock { $0.residentBytes += regionLength }
        return region
    }

    private static func giveBack(_ region: UnsafeMutableRawPointer, resident: Bool) {
        let kept = pool.withLock { p -> Bool in
            guard p.free.count < poolLimit else {
                if resident { p.residentBytes -= regionLength }
                return false
            }
            p.free.append((region, resident))
            return true
        }
        if !kept { munmap(region, regionLength) }
    }
}
