import CHBONEPosix
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// A pod's network namespace as the CNI agent hands it over (an nsfs file descriptor). The
/// descriptor is closed when the last holder lets go: the pod registry, each snapshot naming the
/// pod, each listener or connection made in it.
public final class NetworkNamespace: Sendable, CustomStringConvertible {
    public let fd: Int32
    /// The pod it belongs to (for logs).
    public let owner: String

    /// Takes ownership of `fd`; check it with `isNetworkNamespace` first.
    public init(takingOwnership fd: Int32, owner: String) {
        self.fd = fd
        self.owner = owner
    }

    deinit { close(fd) }

    public var description: String { "netns of \(owner)" }

    /// Whether `fd` is a network namespace (nil: it cannot be told, treated as no by callers).
    public static func isNetworkNamespace(_ fd: Int32) -> Bool? {
        switch chbone_is_netns(fd) {
        case 1: true
        case 0: false
        default: nil
        }
    }

    /// Runs `body` with the calling thread inside this namespace, then puts the thread back into
    /// the namespace it was in. Sockets made inside stay in this namespace for their whole life.
    public func run<T>(_ body: () throws(SystemError) -> T) throws(SystemError) -> T {
        let home = chbone_open_own_netns()
        guard home >= 0 else { throw SystemError("open this thread's network namespace") }
        defer { close(home) }
        guard chbone_setns_net(fd) == 0 else { throw SystemError("setns into \(self)") }
        defer {
            // A thread left in a pod's namespace would put every later socket of its loop there.
            if chbone_setns_net(home) != 0 {
                fatalError("BUG: cannot return to the proxy's network namespace after \(self): \(SystemError("setns"))")
            }
        }
        return try body()
    }
}
