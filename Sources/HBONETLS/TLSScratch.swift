/// The two buffers a loop's TLS connections borrow for one call at a time: `plaintext`, where
/// `TLSEngine.read` decrypts into (64 KiB: up to four records per read), and `record`, where a pump's
/// frames are gathered (`TLSRecordGather`). One per loop-confined owner (a worker, a control-plane
/// channel); nothing borrowed may be kept past the call, so connections on one loop share them.
public final class TLSScratch {
    public let plaintext: UnsafeMutableRawBufferPointer
    /// Only `TLSRecordGather` writes here: a record's worth, whatever the caller.
    let record: UnsafeMutableRawBufferPointer

    public init() {
        plaintext = .allocate(byteCount: 64 * 1024, alignment: 16)
        record = .allocate(byteCount: TLSRecordGather.recordPlaintext, alignment: 16)
    }

    deinit {
        plaintext.deallocate()
        record.deallocate()
    }
}
