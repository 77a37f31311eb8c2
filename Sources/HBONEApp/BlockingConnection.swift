import Foundation
import HBONECore
import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection for the command-line tools (admin client, endpoint check): they do
/// one exchange and exit, so the event loop would only add ceremony.
struct BlockingConnection: ~Copyable {
    let fd: Int32

    /// Connects within `timeout` seconds (then "timed out"), and reads with the same limit.
    init(_ address: SocketAddress, timeout: Int = 10) throws(ToolError) {
        let fd = socket(address.ip.isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ToolError("socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // SO_SNDTIMEO bounds a blocking connect too.
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var (storage, length) = Socket.makeSockaddr(address)
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        if rc != 0 {
            let e = errno
            close(fd)
            switch e {
            case EINPROGRESS, EAGAIN, ETIMEDOUT: throw ToolError("connect \(address): timed out after \(timeout)s")
            case ECONNREFUSED: throw ToolError("connect \(address): connection refused")
            default: throw ToolError("connect \(address): \(String(cString: strerror(e)))")
            }
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ bytes: UnsafeRawBufferPointer) { _ = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }

    /// Bytes read, 0 at EOF, negative on error or timeout.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int { recv(fd, buffer.baseAddress, buffer.count, 0) }

    func setReceiveTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}

func iso(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }
