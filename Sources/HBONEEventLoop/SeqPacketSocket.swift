import CHBONEPosix
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A blocking `AF_UNIX SOCK_SEQPACKET` client, the transport of istio-cni's ZDS: one message per
/// datagram, file descriptors passed alongside (SCM_RIGHTS). Used by one thread at a time.
public final class SeqPacketSocket {
    public let fd: Int32

    public init(connectingTo path: String) throws(SystemError) {
        let fd = chbone_seqpacket_connect(path)
        guard fd >= 0 else { throw SystemError("connect \(path)") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// One received datagram and the descriptors that came with it (the caller owns them).
    public struct Datagram {
        public var bytes: [UInt8]
        public var fds: [Int32]
        /// The datagram or its descriptors did not fit (the message is incomplete; extra descriptors were closed).
        public var truncated: Bool
    }

    /// Waits up to `timeoutMillis` for a datagram: nil on timeout; `bytes` empty with no fds when the
    /// peer closed.
    public func receive(maxBytes: Int = 64 * 1024, maxFDs: Int = 2, timeoutMillis: Int32) throws(SystemError) -> Datagram? {
        let ready = chbone_poll_readable(fd, timeoutMillis)
        if ready < 0 { throw SystemError("poll") }
        if ready == 0 { return nil }
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var fds = [Int32](repeating: -1, count: maxFDs)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { b in
            fds.withUnsafeMutableBufferPointer { f in
                chbone_recv_with_fds(fd, b.baseAddress, b.count, f.baseAddress, Int32(maxFDs), &count, &truncated)
            }
        }
        if n < 0 { throw SystemError("recvmsg") }
        return Datagram(bytes: Array(buffer[0..<n]), fds: Array(fds[0..<Int(count)]), truncated: truncated != 0)
    }

    public func send(_ bytes: [UInt8], fd passing: Int32 = -1) throws(SystemError) {
        let n = bytes.withUnsafeBytes { chbone_send_with_fd(fd, $0.baseAddress, $0.count, passing) }
        if n < 0 { throw SystemError("sendmsg") }
    }
}
