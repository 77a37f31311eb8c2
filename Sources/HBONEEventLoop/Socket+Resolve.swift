import HBONECore
#if canImport(Glibc)
import Glibc
#endif

extension Socket {
    /// The addresses `host` names (an IP literal as itself; a name through the system resolver, which
    /// may block: call it off the loops). IPv4 first, duplicates dropped, every one in normal form.
    public static func resolve(host: String, port: UInt16) -> Result<[SocketAddress], SystemError> {
        if let ip = IPAddress(host) { return .success([SocketAddress(ip: ip, port: port)]) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else {
            // getaddrinfo's codes are not errnos; EAI_SYSTEM is the one that sets errno.
            return .failure(SystemError("getaddrinfo \(host.prefix(80)): \(String(cString: gai_strerror(rc)))", errno: rc == EAI_SYSTEM ? errno : 0))
        }
        defer { freeaddrinfo(list) }
        var out: [SocketAddress] = []
        var p = list
        while let entry = p {
            if let sa = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(Int(entry.pointee.ai_addrlen), dst.count)))
                }
                if var address = socketAddress(storage) {
                    address.port = port
                    if !out.contains(address) { out.append(address) }
                }
            }
            p = entry.pointee.ai_next
        }
        out.sort { $0.ip.isIPv4 && !$1.ip.isIPv4 }
        return out.isEmpty ? .failure(SystemError("getaddrinfo \(host.prefix(80)): no addresses", errno: 0)) : .success(out)
    }
}
