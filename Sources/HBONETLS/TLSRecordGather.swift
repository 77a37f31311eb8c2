/// Gathers small pieces of plaintext into one TLS record. nghttp2 hands frames over one at a time
/// (a HEADERS, a 1-byte DATA, a WINDOW_UPDATE), and written one by one each became a record of its
/// own: an AEAD seal here, an `SSL_read` and an AEAD open at the peer, 22 bytes more on the wire.
/// A piece of a whole record or more goes straight to the engine after what was gathered, so bulk
/// DATA is never copied twice.
public struct TLSRecordGather {
    /// The most plaintext one TLS record carries.
    public static let recordPlaintext = 16_384

    private let engine: TLSEngine
    /// The loop's `TLSScratch.record`, borrowed for this gather's life.
    private let scratch: UnsafeMutableRawBufferPointer
    private var gathered = 0
    /// The first write that failed; later pieces are dropped (the engine is failed).
    private var error: TLSError?

    /// Runs `produce`, gathering what it hands to `append` into records of `engine`. What was handed
    /// over is written even when `produce` throws (the error is passed on). Returns the first TLS
    /// write error.
    public static func write<E: Error>(to engine: TLSEngine, scratch: TLSScratch,
                                       _ produce: (_ append: (UnsafeRawBufferPointer) -> Void) throws(E) -> Void) throws(E) -> TLSError? {
        var gather = TLSRecordGather(engine: engine, scratch: scratch)
        do {
            try produce { gather.append($0) }
        } catch {
            _ = gather.finish()
            throw error
        }
        return gather.finish()
    }

    private init(engine: TLSEngine, scratch: TLSScratch) {
        self.engine = engine
        self.scratch = scratch.record
    }

    private mutating func append(_ piece: UnsafeRawBufferPointer) {
        guard error == nil, !piece.isEmpty else { return }
        if piece.count >= Self.recordPlaintext {
            flush()
            if error == nil { error = engine.write(piece) }
            return
        }
        if gathered + piece.count > Self.recordPlaintext { flush() }
        UnsafeMutableRawBufferPointer(rebasing: scratch[gathered...]).copyMemory(from: piece)
        gathered += piece.count
    }

    /// Writes what is gathered; returns the first error of the whole gather.
    private mutating func finish() -> TLSError? {
        flush()
        return error
    }

    private mutating func flush() {
        guard gathered > 0 else { return }
        defer { gathered = 0 }
        if error == nil { error = engine.write(UnsafeRawBufferPointer(rebasing: scratch[..<gathered])) }
    }
}
