/// What an `H2Session` reports. Calls arrive inside `receive` or `produce`: a delegate may buffer,
/// pause or resume I/O and submit frames, but must not release the session or its owner; defer
/// closes to the end of the loop pass.
public protocol H2SessionDelegate: AnyObject {
    /// Server: a complete request header block (a new stream).
    func h2(_ session: H2Session, request stream: Int32, headers: [H2Header], endStream: Bool)
    /// Client: the response header block of `stream`.
    func h2(_ session: H2Session, response stream: Int32, status: Int, headers: [H2Header], endStream: Bool)
    /// DATA payload for `stream`. Call `consume` once these bytes have left the proxy.
    func h2(_ session: H2Session, data stream: Int32, bytes: UnsafeRawBufferPointer)
    /// The peer half-closed `stream` (END_STREAM).
    func h2(_ session: H2Session, endOfStream stream: Int32)
    /// A trailing header block on `stream` (gRPC's status); `endOfStream` follows.
    func h2(_ session: H2Session, trailers stream: Int32, headers: [H2Header])
    /// `stream` is gone (both sides done, or reset with `errorCode`).
    func h2(_ session: H2Session, closed stream: Int32, errorCode: UInt32)
    /// `stream`'s send queue fell below the low-water mark: its source may read again.
    func h2(_ session: H2Session, drained stream: Int32)
    func h2(_ session: H2Session, goaway lastStreamID: Int32, errorCode: UInt32)
    func h2PingAcknowledged(_ session: H2Session)
    /// The peer's first SETTINGS arrived: the HTTP/2 connection preface is complete.
    func h2PeerSettingsReceived(_ session: H2Session)
    /// The peer reset `stream` before we answered it (the rapid-reset pattern when it repeats).
    func h2(_ session: H2Session, prematureReset stream: Int32)
    /// nghttp2 itself refused the peer's input: it sent GOAWAY (`stream` 0) or RST_STREAM with
    /// `code`, or stopped reading (flood, bad preface). Never called for frames we asked for.
    func h2(_ session: H2Session, protocolError reason: H2ProtocolError, stream: Int32)
}

extension H2SessionDelegate {
    public func h2(_ session: H2Session, trailers stream: Int32, headers: [H2Header]) {}
    public func h2PeerSettingsReceived(_ session: H2Session) {}
    public func h2(_ session: H2Session, prematureReset stream: Int32) {}
    public func h2(_ session: H2Session, protocolError reason: H2ProtocolError, stream: Int32) {}
}
