import HBONECore
import HBONEConfig
import HBONEEventLoop

/// A pod handed over by the CNI agent (in-pod mode): its workload (from the file or xDS by UID, or
/// made from what the agent said) and its network namespace, where every worker opens the pod's
/// 15001/15006/15008 listeners and makes the pod's upstream connections.
public struct InPodWorkload: Sendable {
    public let uid: String
    public let workload: Workload
    public let netns: NetworkNamespace

    public init(uid: String, workload: Workload, netns: NetworkNamespace) {
        self.uid = uid
        self.workload = workload
        self.netns = netns
    }

    /// Whether the pod has an IPv6 address (its listeners then take IPv6 too).
    public var hasIPv6: Bool { workload.workloadIps.contains { !$0.isIPv4 } }

    /// Whether its listeners (and DNS) take IPv6 too: it has an IPv6 address and IPv6 is in use.
    func servesIPv6(_ settings: Settings) -> Bool { settings.ipv6Enabled && hasIPv6 }

    /// The wildcard addresses its 15001/15006/15008 listeners bind: IPv4 always, IPv6 too when it
    /// serves IPv6 (the IPv6 sockets are V6ONLY).
    func listenerHosts(_ settings: Settings) -> [IPAddress] {
        servesIPv6(settings) ? [.v4(0), .v6(0, 0)] : [.v4(0)]
    }
}
