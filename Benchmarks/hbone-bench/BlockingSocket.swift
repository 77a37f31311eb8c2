import Foundation
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// Blocking TCP for the benchmark client (the client is not what is measured).
struct BlockingSocket {
    let fd: Int32

    static func connect(_ address: SocketAddress, from source: IPAddress? = nil) throws -> BlockingSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A server that stops answering fails the attempt instead of hanging the benchmark.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let error = connectIPv4(fd, to: address, from: source)
        if error != 0 {
            _ = Glibc.close(fd)
            throw BenchError("connect \(address): \(String(cString: strerror(error)))")
        }
        return BlockingSocket(fd: fd)
    }

    func sendAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n <= 0 { throw BenchError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        recv(fd, buffer.baseAddress, buffer.count, 0)
    }

    /// SOCKS5 no-auth CONNECT to an IPv4 destination.
    func socks5Connect(_ dst: SocketAddress) throws {
        guard let request = Socks5Request.connect(dst) else { throw BenchError("IPv4 only") }
        try Socks5Request.greeting.withUnsafeBytes { try sendAll($0) }
        var reply = [UInt8](repeating: 0, count: 2)
        guard reply.withUnsafeMutableBytes({ receiveExactly($0) }), reply == [5, 0] else { throw BenchError("SOCKS5 greeting refused") }
        try request.withUnsafeBytes { try sendAll($0) }
        var r = [UInt8](repeating: 0, count: 10)
        guard r.withUnsafeMutableBytes({ receiveExactly($0) }), r[1] == 0 else { throw BenchError("SOCKS5 CONNECT refused (\(r[1]))") }
    }

    func receiveExactly(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var got = 0
        while got < buffer.count {
            let n = recv(fd, buffer.baseAddress! + got, buffer.count - got, 0)
            if n <= 0 { return false }
            got += n
        }
        return true
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
    func close() { _ = Glibc.close(fd) }
}

/// Binds `fd` to `source` if given and connects it to `address`; returns connect's errno, 0 once
/// connected (a non-blocking socket answers EINPROGRESS; the benchmarks use IPv4 only).
func connectIPv4(_ fd: Int32, to address: SocketAddress, from source: IPAddress?) -> Int32 {
    guard case let .v4(v) = address.ip else { return EAFNOSUPPORT }
    if let source, case let .v4(s) = source {
        // Pick the port at connect time from the whole 4-tuple: binding port 0 to one source IP
        // gets slow once thousands of earlier connections sit in TIME_WAIT.
        var noPort: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &noPort, socklen_t(MemoryLayout<Int32>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = s.bigEndian
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = address.port.bigEndian
    addr.sin_addr.s_addr = v.bigEndian
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    return rc == 0 ? 0 : errno
}

/// What the benchmark clients send a SOCKS5 server.
enum Socks5Request {
    /// Version 5, one method: no authentication.
    static let greeting: [UInt8] = [5, 1, 0]

    /// CONNECT to an IPv4 destination; nil for IPv6 (the benchmarks use IPv4 only).
    static func connect(_ dst: SocketAddress) -> [UInt8]? {
        guard case let .v4(v) = dst.ip else { return nil }
        return [5, 1, 0, 1, UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff), UInt8(dst.port >> 8), UInt8(dst.port & 0xff)]
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// CPU time (user+system) of a process in milliseconds, from /proc/<pid>/stat.
func processCPUMillis(_ pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
    return (utime + stime) * 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// A blocking listener for the benchmark's own servers.
struct BlockingListener {
    let fd: Int32

    init(_ address: SocketAddress) throws {
        guard case let .v4(v) = address.ip else { throw BenchError("IPv4 only") }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = address.port.bigEndian
        addr.sin_addr.s_addr = v.bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 512) == 0 else {
            let e = errno
            _ = Glibc.close(fd)
            throw BenchError("listen \(address): \(String(cString: strerror(e)))")
        }
    }

    func accept() -> BlockingSocket? {
        let c = Glibc.accept(fd, nil, nil)
        guard c >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return BlockingSocket(fd: c)
    }
}
