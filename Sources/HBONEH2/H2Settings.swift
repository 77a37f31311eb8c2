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
    /// Largest DATA payload we send in one frame; larger frames mean fewer TLS records and headers.
    public var maxSendFrame: Int = 64 * 1024
    /// A stream's send queue above this stops reading its TCP source.
    public var sendHighWater: Int = 256 * 1024

    public init() {}
}
