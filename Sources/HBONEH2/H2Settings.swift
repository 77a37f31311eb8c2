/// HTTP/2 limits of one session. Defaults are chosen against the reference's (hbone-reference §3).
public struct H2Settings: Sendable, Equatable {
    /// Per-stream receive window. The reference uses 4 MiB; 1 MiB still fills a loopback or LAN
    /// link and bounds what one slow reader can make us buffer.
    public var streamWindow: Int = 1 << 20
    /// Connection receive window: 4× the stream window, so one stalled stream cannot block the rest.
    public var connectionWindow: Int = 4 << 20
    /// Largest frame we accept (the reference's value).
    public var maxFrameSize: Int = 1 << 20
    /// Streams a peer may open on a connection we serve (the reference serves 200).
    public var maxConcurrentStreams: Int = 200
    /// Largest DATA payload we send in one frame: 16384 − 9, so a frame with its header is exactly
    /// one full TLS record. 64 KiB frames measured slower (each left a 9-byte fifth record) and grow
    /// nghttp2's per-session frame buffer from 16 KiB to 64 KiB for the life of the connection.
    public var maxSendFrame: Int = 16384 - 9
    /// A stream's send queue above this stops reading its TCP source.
    public var sendHighWater: Int = 256 * 1024

    public init() {}
}
