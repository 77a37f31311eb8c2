import Foundation
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection for the command-line tools (admin client, endpoint check): they do
/// one exchange and exit, so the event loop would only add ceremony.
struct BlockingConnection: ~Copyable {
    let fd: Int32

    /// Connects with a 10 s receive timeout.
    init(_ address: SocketAddress) throws(ToolError) {
        guard case let .v4(v) = address.ip else { throw ToolError("IPv4 targets only") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ToolError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = address.port.bigEndian
        addr.sin_addr.s_addr = v.bigEndian
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            let e = errno
            close(fd)
            throw ToolError("connect \(address): \(String(cString: strerror(e)))")
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
