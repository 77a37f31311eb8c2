import CNghttp2
import HBONECore

/// One HTTP/2 connection (client or server) over bytes, on libnghttp2: `receive` takes bytes from
/// the peer, `produce` emits bytes for it. Flow control is manual (no automatic WINDOW_UPDATE):
/// the owner calls `consume` after the upstream socket took the bytes, so backpressure reaches the
/// sender and at most one stream window per stream is ever buffered. Confined to one thread.
public final class H2Session {
    public enum Role: Sendable { case client, server }

    public let role: Role
    public let settings: H2Settings
    /// Strong, like `TCPStream.delegate`: the delegate usually owns the session, and lets go of it
    /// (or sets this to nil) when it is done, which breaks the cycle. Not weak: an object that is
    /// ever the target of a weak reference keeps its counts in a side table, and every retain and
    /// release of it takes Swift's slow path (the HBONE connection, ~18 per echoed round trip).
    public var delegate: H2SessionDelegate?
    private var session: OpaquePointer!
    /// nghttp2's allocator for this session; outlives `session` (freed in deinit after it).
    let memory = H2FrameBufferMemory()
    /// Frames went out since the last `releaseIdleMemory`.
    private var producedSinceSweep = false
    private var streams = IntegerMap<Int32, StreamState>()
    /// `withHeaderVector`'s buffers, kept between calls (emptied by `releaseIdleMemory`).
    private var headerBytes: [UInt8] = []
    private var headerVector: [nghttp2_nv] = []
    /// RST_STREAM frames we submitted and nghttp2 has not sent yet (so they are not reported as errors).
    private var ownResets: Set<Int32> = []
    public private(set) var goawayReceived = false
    public private(set) var goawaySent = false
    /// The peer's SETTINGS arrived (its connection preface is complete).
    public private(set) var peerSettingsReceived = false
    /// The session ended for the peer's misbehaviour: nghttp2's own GOAWAY for a protocol error, a
    /// fatal error, or `terminate`.
    public private(set) var terminatedByProtocolError = false

    final class StreamState {
        var outbound = ByteQueue()
        var endRequested = false
        var deferred = false
        var headers: [H2Header] = []
        var unconsumed = 0       // DATA bytes delivered to the owner and not yet consumed
        var wasAboveHighWater = false
        var hasProvider = false
        var responded = false
        /// Sent as a trailing HEADERS frame (with END_STREAM) after the queued DATA.
        var trailers: [H2Header]?
        /// Bytes were queued since the last sweep: a busy stream keeps its buffer between passes
        /// (freeing and taking a large one each pass faulted its pages in every time).
        var queuedSinceSweep = false
    }

    public init(role: Role, settings: H2Settings = H2Settings(), delegate: H2SessionDelegate?) throws(H2Error) {
        self.role = role
        self.settings = settings
        self.delegate = delegate
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { throw H2Error(NGHTTP2_ERR_NOMEM.rawValue, "callbacks") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, h2OnBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, h2OnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2OnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2OnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2OnStreamClose)
        nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, h2ReadLength)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, h2OnFrameSend)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { throw H2Error(NGHTTP2_ERR_NOMEM.rawValue, "option") }
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        // Bound what a peer can make us hold in header state.
        nghttp2_option_set_max_send_header_block_length(option, 64 * 1024)

        // user_data is this session, unretained: the session owns the nghttp2 object and frees it in deinit.
        let context = Unmanaged.passUnretained(self).toOpaque()
        var raw: OpaquePointer?
        var mem = memory.mem
        memory.capturing = true
        let rc = role == .client
            ? nghttp2_session_client_new3(&raw, callbacks, context, option, &mem)
            : nghttp2_session_server_new3(&raw, callbacks, context, option, &mem)
        memory.capturing = false
        guard rc == 0, let raw else { throw H2Error(rc, "session_new") }
        session = raw

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: UInt32(settings.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(settings.streamWindow)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: UInt32(settings.maxFrameSize)),
        ]
        if role == .client {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        var result = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        if result != 0 { throw H2Error(result, "settings") }
        result = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.connectionWindow))
        if result != 0 { throw H2Error(result, "connection window") }
    }

    deinit { nghttp2_session_del(session) }

    // MARK: Bytes in and out

    /// Feeds bytes from the peer. Delegate calls happen inside. A thrown error is fatal for the connection.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(H2Error) {
        guard bytes.count > 0 else { return }
        let n = nghttp2_session_mem_recv(session, bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count)
        if n < 0 {
            terminatedByProtocolError = true
            delegate?.h2(self, protocolError: H2ProtocolError(libraryError: Int32(n)), stream: 0)
            throw H2Error(Int32(n), "receive")
        }
    }

    /// Emits pending frames to `body` (borrowed bytes) until nothing is left or `limit` bytes went out.
    @discardableResult
    public func produce(limit: Int = Int.max, _ body: (UnsafeRawBufferPointer) -> Void) throws(H2Error) -> Int {
        var total = 0
        while total < limit {
            var data: UnsafePointer<UInt8>? = nil
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 { throw H2Error(Int32(n), "send") }
            if n == 0 { break }
            if memory.released { memory.reactivate() }
            producedSinceSweep = true
            body(UnsafeRawBufferPointer(start: data, count: n))
            total += n
        }
        return total
    }

    /// Bytes `stream`'s send buffer holds allocated (for tests).
    func sendBufferCapacity(stream: Int32) -> Int { streams[stream]?.outbound.capacity ?? 0 }

    /// For a sweep about once a second: a stream that queued nothing since the last sweep gives
    /// its emptied send buffer back, and a session that sent nothing since the last sweep and has
    /// nothing to send gives its frame buffer's pages back to the kernel (H2FrameBufferMemory).
    public func releaseIdleMemory() {
        headerBytes = []
        headerVector = []
        for state in streams.values {
            if !state.queuedSinceSweep { state.outbound.releaseIfEmpty() }
            state.queuedSinceSweep = false
        }
        streams.shrinkIfSparse()
        defer { producedSinceSweep = false }
        guard !producedSinceSweep, !memory.released, !wantsWrite else { return }
        memory.release()
    }

    /// Whether the frame buffer's pages are given back (the session is idle).
    public var frameBufferReleased: Bool { memory.released }

    /// Frame-buffer bytes of all sessions that may be resident (they are outside malloc's heap).
    public static var frameBufferBytes: Int { H2FrameBufferMemory.residentBytes }

    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }
    public var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
    /// Neither side has anything left to say (after GOAWAY both ways, or a fatal error).
    public var isFinished: Bool { !wantsWrite && !wantsRead }
    /// Whether `stream` is still open here (not closed or reset by either side).
    public func isOpen(stream: Int32) -> Bool { streams[stream] != nil }

    // MARK: Streams

    /// Client: opens a CONNECT stream to `authority` (`ip:port`), with no `:scheme` or `:path`.
    public func connect(authority: String, headers extra: [H2Header]) throws(H2Error) -> Int32 {
        let state = StreamState()
        state.hasProvider = true
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: h2DataRead)
        let id = withHeaderVector(H2Header(":method", "CONNECT"), H2Header(":authority", authority), extra) { nva, count in
            nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        if id < 0 { throw H2Error(id, "submit CONNECT") }
        streams[id] = state
        return id
    }

    /// Client: opens a request stream with `headers` (pseudo-headers first: `:method`, `:scheme`,
    /// `:path`, `:authority`), its body streamed with `send` and ended with `finish` — a gRPC call.
    public func request(_ headers: [H2Header]) throws(H2Error) -> Int32 {
        let state = StreamState()
        state.hasProvider = true
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: h2DataRead)
        let id = withHeaderVector(headers) { nva, count in
            nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        if id < 0 { throw H2Error(id, "submit request") }
        streams[id] = state
        return id
    }

    /// Server: answers `stream`. A `200` keeps the stream open for DATA both ways; any other status
    /// ends it (a bare HEADERS frame with END_STREAM, as the reference sends errors).
    public func respond(stream: Int32, status: Int, headers extra: [H2Header] = []) throws(H2Error) {
        let statusField = H2Header(":status", String(status))
        streams[stream]?.responded = true
        let rc: Int32
        if status == 200 {
            let state = streams[stream] ?? StreamState()
            state.hasProvider = true
            streams[stream] = state
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: h2DataRead)
            rc = withHeaderVector(statusField, nil, extra) { nva, count in nghttp2_submit_response(session, stream, nva, count, &provider) }
        } else {
            rc = withHeaderVector(statusField, nil, extra) { nva, count in nghttp2_submit_response(session, stream, nva, count, nil) }
        }
        if rc != 0 { throw H2Error(rc, "submit response") }
    }

    /// Queues DATA for `stream`.
    public func send(stream: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let state = streams[stream], !state.endRequested else { return }
        state.outbound.append(bytes)
        state.queuedSinceSweep = true
        resumeIfDeferred(stream, state)
    }

    /// END_STREAM after the queued DATA (TCP FIN from our side of the tunnel). With `trailers`,
    /// the stream ends with a trailing HEADERS frame instead (gRPC's status).
    public func finish(stream: Int32, trailers: [H2Header]? = nil) {
        guard let state = streams[stream], !state.endRequested else { return }
        state.endRequested = true
        state.trailers = trailers
        resumeIfDeferred(stream, state)
    }

    /// RST_STREAM.
    public func reset(stream: Int32, errorCode: UInt32 = H2ErrorCode.cancel) {
        if nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, errorCode) == 0 { ownResets.insert(stream) }
    }

    /// Tells the peer it may send `count` more bytes on `stream` (and the connection): they left the proxy.
    public func consume(stream: Int32, _ count: Int) {
        guard count > 0 else { return }
        if let state = streams[stream] { state.unconsumed -= min(count, state.unconsumed) }
        _ = nghttp2_session_consume(session, stream, count)
    }

    /// Bytes of `stream` delivered but never consumed (released when a tunnel dies with data in flight).
    public func unconsumed(stream: Int32) -> Int { streams[stream]?.unconsumed ?? 0 }

    public func queuedBytes(stream: Int32) -> Int { streams[stream]?.outbound.count ?? 0 }
    public func isAboveHighWater(stream: Int32) -> Bool { queuedBytes(stream: stream) >= settings.sendHighWater }
    public var openStreams: Int { streams.count }
    /// The concurrent-stream limit the peer announced (ours is used before its SETTINGS arrive).
    public var peerMaxConcurrentStreams: Int {
        Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    public func ping() {
        _ = nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// GOAWAY with the last stream we processed: streams already open finish, new ones are refused.
    public func goaway(errorCode: UInt32 = H2ErrorCode.noError) {
        guard !goawaySent else { return }
        goawaySent = true
        let last = nghttp2_session_get_last_proc_stream_id(session)
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// Ends the session for the peer's misbehaviour: GOAWAY with `errorCode`, then nghttp2 reads
    /// nothing more and, once the GOAWAY is out, wants nothing more either.
    public func terminate(errorCode: UInt32) {
        goawaySent = true
        terminatedByProtocolError = true
        _ = nghttp2_session_terminate_session(session, errorCode)
    }

    // MARK: Internals

    private func resumeIfDeferred(_ id: Int32, _ state: StreamState) {
        if state.deferred {
            state.deferred = false
            _ = nghttp2_session_resume_data(session, id)
        }
    }

    private func withHeaderVector<R>(_ headers: [H2Header], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        withHeaderVector(nil, nil, headers, body)
    }

    /// `first`, `second`, then `rest` as nghttp2's field vector, without an array of them all
    /// (building `[pseudo-headers] + extra` was two allocations per tunnel).
    private func withHeaderVector<R>(_ first: H2Header?, _ second: H2Header?, _ rest: [H2Header],
                                     _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        if first == nil && second == nil && rest.isEmpty { return withUnsafePointer(to: nghttp2_nv()) { body($0, 0) } }
        // Reused across calls (nghttp2 copies the fields when a request or response is submitted).
        // The bytes go in first and the pointers after, as appending may move the bytes.
        headerBytes.removeAll(keepingCapacity: true)
        headerVector.removeAll(keepingCapacity: true)
        func add(_ h: H2Header) {
            let n = h.name.utf8.count, v = h.value.utf8.count
            headerBytes.append(contentsOf: h.name.utf8)
            headerBytes.append(contentsOf: h.value.utf8)
            let flags = h.indexed ? NGHTTP2_NV_FLAG_NONE : NGHTTP2_NV_FLAG_NO_INDEX
            headerVector.append(nghttp2_nv(name: nil, value: nil, namelen: n, valuelen: v, flags: UInt8(flags.rawValue)))
        }
        if let first { add(first) }
        if let second { add(second) }
        for h in rest { add(h) }
        headerBytes.append(0)   // never empty, so it has a base address even if every field is ""
        return headerBytes.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            return headerVector.withUnsafeMutableBufferPointer { nva in
                var offset = 0
                for i in nva.indices {
                    nva[i].name = base + offset
                    nva[i].value = base + offset + nva[i].namelen
                    offset += nva[i].namelen + nva[i].valuelen
                }
                return body(nva.baseAddress!, nva.count)
            }
        }
    }

    fileprivate func beginHeaders(_ frame: UnsafePointer<nghttp2_frame>) {
        let id = frame.pointee.hd.stream_id
        if let state = streams[id] {
            state.headers.removeAll()
        } else if role == .server {
            streams[id] = StreamState()
        }
    }

    fileprivate func header(_ id: Int32, _ name: String, _ value: String) -> Bool {
        guard let state = streams[id] else { return true }
        // Bound header count per block: nghttp2 bounds sizes, we bound the list we build.
        if state.headers.count >= 64 { return false }
        // One allocation for a CONNECT's usual fields, instead of growing 1 → 2 → 4 → 8.
        if state.headers.isEmpty { state.headers.reserveCapacity(8) }
        state.headers.append(H2Header(name, value))
        return true
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch Int(hd.type) {
        case Int(NGHTTP2_HEADERS.rawValue):
            guard let state = streams[hd.stream_id] else { break }
            let headers = state.headers
            state.headers = []
            let category = frame.pointee.headers.cat
            if role == .server && category == NGHTTP2_HCAT_REQUEST {
                delegate?.h2(self, request: hd.stream_id, headers: headers, endStream: endStream)
            } else if role == .client && category == NGHTTP2_HCAT_RESPONSE {
                let status = Int(headers[header: ":status"] ?? "") ?? 0
                delegate?.h2(self, response: hd.stream_id, status: status, headers: headers, endStream: endStream)
            } else {
                // A trailing header block (nghttp2 only accepts one with END_STREAM).
                if !headers.isEmpty { delegate?.h2(self, trailers: hd.stream_id, headers: headers) }
                if endStream { delegate?.h2(self, endOfStream: hd.stream_id) }
            }
        case Int(NGHTTP2_DATA.rawValue):
            if endStream { delegate?.h2(self, endOfStream: hd.stream_id) }
        case Int(NGHTTP2_GOAWAY.rawValue):
            goawayReceived = true
            delegate?.h2(self, goaway: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
        case Int(NGHTTP2_PING.rawValue):
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { delegate?.h2PingAcknowledged(self) }
        case Int(NGHTTP2_SETTINGS.rawValue):
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 && !peerSettingsReceived {
                peerSettingsReceived = true
                delegate?.h2PeerSettingsReceived(self)
            }
        case Int(NGHTTP2_RST_STREAM.rawValue):
            // Called before the stream-close callback, so the stream's state is still here.
            if role == .server, let state = streams[hd.stream_id], !state.responded {
                delegate?.h2(self, prematureReset: hd.stream_id)
            }
        default:
            break
        }
    }

    /// A frame went out. GOAWAY and RST_STREAM that nghttp2 sent on its own (not through `goaway`,
    /// `terminate` or `reset`) answer the peer's protocol errors: report them.
    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        switch Int(hd.type) {
        case Int(NGHTTP2_GOAWAY.rawValue):
            let code = frame.pointee.goaway.error_code
            if !goawaySent && code != H2ErrorCode.noError {
                goawaySent = true
                terminatedByProtocolError = true
                delegate?.h2(self, protocolError: H2ProtocolError(code: code), stream: 0)
            }
        case Int(NGHTTP2_RST_STREAM.rawValue):
            let code = frame.pointee.rst_stream.error_code
            if ownResets.remove(hd.stream_id) == nil && code != H2ErrorCode.refusedStream {
                delegate?.h2(self, protocolError: H2ProtocolError(code: code), stream: hd.stream_id)
            }
        default:
            break
        }
    }

    fileprivate func dataChunk(_ id: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let state = streams[id] else {
            // Data for a stream we forgot: give the window back at once.
            _ = nghttp2_session_consume(session, id, bytes.count)
            return
        }
        state.unconsumed += bytes.count
        delegate?.h2(self, data: id, bytes: bytes)
    }

    fileprivate func streamClosed(_ id: Int32, _ errorCode: UInt32) {
        guard let state = streams.removeValue(forKey: id) else { return }
        // Bytes the owner never consumed would shrink the connection window forever: return them.
        if state.unconsumed > 0 { _ = nghttp2_session_consume_connection(session, state.unconsumed) }
        delegate?.h2(self, closed: id, errorCode: errorCode)
    }

    /// Closing a stream that still has undelivered bytes: the owner dropped them.
    public func release(stream: Int32) {
        guard let state = streams[stream], state.unconsumed > 0 else { return }
        _ = nghttp2_session_consume_connection(session, state.unconsumed)
        state.unconsumed = 0
    }

    fileprivate func readData(_ id: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let state = streams[id] else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let above = state.outbound.count >= settings.sendHighWater
        let copied = state.outbound.consume { bytes in
            let n = min(bytes.count, length)
            buffer.update(from: bytes.bindMemory(to: UInt8.self).baseAddress!, count: n)
            return n
        }
        if state.outbound.isEmpty {
            if state.endRequested {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = state.trailers {
                    // The trailers carry END_STREAM; submitting them from this callback is nghttp2's way.
                    state.trailers = nil
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    let rc = withHeaderVector(trailers) { nva, count in nghttp2_submit_trailer(session, id, nva, count) }
                    if rc != 0 { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                }
            } else if copied == 0 {
                state.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        if above && state.outbound.count < settings.sendHighWater / 2 {
            delegate?.h2(self, drained: id)
        } else if !above && copied > 0 && state.outbound.isEmpty {
            delegate?.h2(self, drained: id)
        }
        return copied
    }

    fileprivate func maxPayload(_ sessionWindow: Int32, _ streamWindow: Int32, _ remoteMaxFrame: UInt32) -> Int {
        max(1, min(Int(sessionWindow), Int(streamWindow), Int(remoteMaxFrame), settings.maxSendFrame))
    }
}

// MARK: C callbacks. user_data is the H2Session, unretained (it owns the nghttp2 session).

/// Calls `body` with the session behind `userData` without retaining it: nghttp2 calls back only
/// from inside the session's own calls into it, so the session is alive throughout (a retain and
/// a release per callback were ~50 reference-count operations per tunnel).
@inline(__always) private func withOwner<R>(_ userData: UnsafeMutableRawPointer?, _ body: (H2Session) -> R) -> R {
    Unmanaged<H2Session>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
}

private let h2OnBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    if let frame { withOwner(userData) { $0.beginHeaders(frame) } }
    return 0
}

private let h2OnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame, let name, let value else { return 0 }
    let n = String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self)
    let v = String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
    return withOwner(userData) { $0.header(frame.pointee.hd.stream_id, n, v) } ? 0 : Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
}

private let h2OnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    if let frame { withOwner(userData) { $0.frameReceived(frame) } }
    return 0
}

private let h2OnFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
    if let frame { withOwner(userData) { $0.frameSent(frame) } }
    return 0
}

private let h2OnDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    if let data { withOwner(userData) { $0.dataChunk(streamID, UnsafeRawBufferPointer(start: data, count: length)) } }
    return 0
}

private let h2OnStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    withOwner(userData) { $0.streamClosed(streamID, errorCode) }
    return 0
}

private let h2DataRead: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
    guard let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return withOwner(userData) { $0.readData(streamID, buffer, length, flags) }
}

private let h2ReadLength: nghttp2_data_source_read_length_callback = { _, _, _, sessionWindow, streamWindow, remoteMaxFrame, userData in
    withOwner(userData) { $0.maxPayload(sessionWindow, streamWindow, remoteMaxFrame) }
}
