import CHBONEPosix
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// Outcome of one non-blocking read or write. Would-block is not an error.
public enum IOResult: Equatable, Sendable {
    case bytes(Int)
    case wouldBlock
    case eof
    case error(Int32)
}

/// Thin, non-blocking socket calls on raw fds. The caller owns each fd and closes it exactly once.
public enum Socket {
    public static func makeSockaddr(_ address: SocketAddress) -> (sockaddr_storage, socklen_t) {
        var storage = sockaddr_storage()
        switch address.ip {
        case let .v4(v):
            return withUnsafeMutablePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    sin.pointee.sin_family = sa_family_t(AF_INET)
                    sin.pointee.sin_port = address.port.bigEndian
                    sin.pointee.sin_addr.s_addr = v.bigEndian
                }
                return (p.pointee, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        case .v6:
            return withUnsafeMutablePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                    sin6.pointee.sin6_port = address.port.bigEndian
                    sin6.pointee.sin6_addr = address.ip.in6
                }
                return (p.pointee, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }

    public static func socketAddress(_ storage: sockaddr_storage) -> SocketAddress? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    SocketAddress(ip: .v4(UInt32(bigEndian: sin.pointee.sin_addr.s_addr)), port: UInt16(bigEndian: sin.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    // init(in6:) gives the normal form: IPv4-mapped addresses read as IPv4.
                    SocketAddress(ip: IPAddress(in6: sin6.pointee.sin6_addr), port: UInt16(bigEndian: sin6.pointee.sin6_port))
                }
            }
        default:
            return nil
        }
    }

    /// A listening TCP socket with SO_REUSEPORT, so each loop binds its own and the kernel spreads
    /// connections across loops. `freebind` lets it bind an address not (yet) on this host.
    /// `transparent`: IP_TRANSPARENT, for in-pod listeners that accept redirected connections
    /// addressed anywhere (ztunnel sets it on its pod listeners).
    public static func listen(on address: SocketAddress, backlog: Int32 = 1024, freebind: Bool = true, reusePort: Bool = true,
                              transparent: Bool = false, mark: Int32? = nil) throws(SystemError) -> Int32 {
        let fd = try bound(Int32(SOCK_STREAM.rawValue), to: address, reuseAddress: true, reusePort: reusePort, freebind: freebind,
                           transparent: transparent, mark: mark)
        if Glibc.listen(fd, backlog) != 0 {
            let error = SystemError("listen \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// A non-blocking socket of `type` (stream or datagram) with the options asked for, bound to
    /// `address` (an IPv6 one V6ONLY). The caller owns the fd.
    public static func bound(_ type: Int32, to address: SocketAddress, reuseAddress: Bool = false, reusePort: Bool = false,
                             freebind: Bool = false, transparent: Bool = false, mark: Int32? = nil) throws(SystemError) -> Int32 {
        let fd = chbone_socket(address.ip.isIPv4 ? AF_INET : AF_INET6, type)
        if fd < 0 { throw SystemError("socket") }
        if transparent { _ = chbone_set_int_option(fd, chbone_sol_ip, chbone_ip_transparent, 1) }
        if let mark { _ = chbone_set_int_option(fd, SOL_SOCKET, chbone_so_mark, mark) }
        if reuseAddress { _ = chbone_set_int_option(fd, SOL_SOCKET, chbone_so_reuseaddr, 1) }
        if reusePort { _ = chbone_set_int_option(fd, SOL_SOCKET, chbone_so_reuseport, 1) }
        if freebind { _ = chbone_set_int_option(fd, Int32(IPPROTO_IP), chbone_ip_freebind, 1) }
        if !address.ip.isIPv4 { _ = chbone_set_int_option(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        var (storage, length) = makeSockaddr(address)
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        if rc != 0 {
            let error = SystemError("bind \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Starts a non-blocking connect. Returns the fd; completion shows as writability (check `pendingError`).
    /// `transparent`: bind `source` with IP_TRANSPARENT, an address that is not this host's (in-pod
    /// inbound connects to the app from the original client's address).
    public static func connect(to address: SocketAddress, from source: SocketAddress? = nil, mark: Int32? = nil,
                               transparent: Bool = false) throws(SystemError) -> Int32 {
        let fd = chbone_socket(address.ip.isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue))
        if fd < 0 { throw SystemError("socket") }
        if let mark { _ = chbone_set_int_option(fd, SOL_SOCKET, chbone_so_mark, mark) }
        if transparent, source != nil, chbone_set_int_option(fd, chbone_sol_ip, chbone_ip_transparent, 1) != 0 {
            let error = SystemError("IP_TRANSPARENT")
            close(fd)
            throw error
        }
        if let source {
            _ = chbone_set_int_option(fd, Int32(IPPROTO_IP), chbone_ip_freebind, 1)
            // Port 0: let connect pick the port per destination (IP_BIND_ADDRESS_NO_PORT), so many
            // connections from one source address do not run out of ports at bind time.
            if source.port == 0 { _ = chbone_set_int_option(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, 1) }
            var (storage, length) = makeSockaddr(source)
            let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            if rc != 0 {
                let error = SystemError("bind \(source)")
                close(fd)
                throw error
            }
        }
        var (storage, length) = makeSockaddr(address)
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
        if rc != 0 && errno != EINPROGRESS {
            let error = SystemError("connect \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    public static func accept(_ listener: Int32) -> (fd: Int32, peer: SocketAddress?)? {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        let fd = chbone_accept(listener, &storage, &length)
        if fd < 0 { return nil }
        return (fd, socketAddress(storage))
    }

    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return rc == 0 ? socketAddress(storage) : nil
    }

    public static func peerAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
        return rc == 0 ? socketAddress(storage) : nil
    }

    /// The pre-REDIRECT destination of a connection redirected by iptables (nil when not redirected).
    public static func originalDestination(_ fd: Int32, ipv6: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        guard chbone_original_dst(fd, ipv6 ? AF_INET6 : AF_INET, &storage, &length) == 0 else { return nil }
        return socketAddress(storage)
    }

    /// Every address configured on this host's interfaces (getifaddrs), in normal form.
    /// A connection to one of them on a port the proxy listens on reaches the proxy itself.
    public static func interfaceAddresses() -> [IPAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0 else { return [] }
        defer { freeifaddrs(head) }
        var out: [IPAddress] = []
        var cursor = head
        while let entry = cursor {
            cursor = entry.pointee.ifa_next
            guard let sa = entry.pointee.ifa_addr else { continue }
            let family = Int32(sa.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size))
            }
            if let address = socketAddress(storage) { out.append(address.ip) }
        }
        return out
    }

    public static func pendingError(_ fd: Int32) -> Int32 { chbone_get_socket_error(fd) }

    /// TCP_NODELAY and keepalive, as the reference sets on every connection.
    public static func tune(_ fd: Int32, keepalive: TCPKeepalive?) {
        _ = chbone_set_int_option(fd, chbone_sol_tcp, chbone_tcp_nodelay, 1)
        if let keepalive { enableKeepalive(fd, keepalive) }
    }

    /// Keepalive probes after `time` idle, every `interval`, `probes` unanswered end the
    /// connection (ztunnel's defaults: 180 s, 180 s, 9); and TCP_USER_TIMEOUT when asked.
    public static func enableKeepalive(_ fd: Int32, _ k: TCPKeepalive) {
        if k.enabled {
            _ = chbone_set_int_option(fd, SOL_SOCKET, chbone_so_keepalive, 1)
            _ = chbone_set_int_option(fd, chbone_sol_tcp, chbone_tcp_keepidle, Int32(clamping: max(1, k.time.components.seconds)))
            _ = chbone_set_int_option(fd, chbone_sol_tcp, chbone_tcp_keepintvl, Int32(clamping: max(1, k.interval.components.seconds)))
            _ = chbone_set_int_option(fd, chbone_sol_tcp, chbone_tcp_keepcnt, Int32(clamping: k.probes))
        }
        if k.userTimeout { _ = chbone_set_int_option(fd, chbone_sol_tcp, chbone_tcp_user_timeout, Int32(clamping: k.userTimeoutMilliseconds)) }
    }

    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .eof }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return .wouldBlock }
        return .error(e)
    }

    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> IOResult {
        let n = send(fd, buffer.baseAddress, buffer.count, chbone_msg_nosignal)
        if n >= 0 { return .bytes(n) }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return .wouldBlock }
        return .error(e)
    }

    public static func shutdownWrite(_ fd: Int32) { _ = shutdown(fd, chbone_shut_wr) }

    /// Closes with RST instead of FIN (SO_LINGER 0), to signal a reset to the peer.
    public static func abort(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    public static func raiseFileLimit() -> Int { chbone_raise_nofile_limit() }
    public static func ignoreSIGPIPE() { chbone_ignore_sigpipe() }
    public static func monotonicNanos() -> UInt64 { chbone_monotonic_ns() }
    public static func processCPUNanos() -> UInt64 { chbone_process_cpu_ns() }
    public static func heapInUse() -> UInt64 { chbone_heap_in_use() }
    public static func setThreadName(_ name: String) { chbone_set_thread_name(name) }
}
