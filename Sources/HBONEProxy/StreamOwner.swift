import HBONEH2

/// The tunnel that owns one HTTP/2 stream of an `HBONEConnection`. Calls arrive inside nghttp2
/// callbacks: an owner may buffer and pause or resume I/O, and defers anything that frees.
protocol StreamOwner: AnyObject {
    /// Client side: the CONNECT response.
    func streamResponse(status: Int, headers: [H2Header])
    func streamData(_ bytes: UnsafeRawBufferPointer)
    /// The peer half-closed (END_STREAM).
    func streamEnded()
    /// The stream is gone; `errorCode` 0 after a clean close both ways, else a reset.
    func streamClosed(errorCode: UInt32)
    /// The stream's send queue drained below its low-water mark.
    func streamDrained()
}
