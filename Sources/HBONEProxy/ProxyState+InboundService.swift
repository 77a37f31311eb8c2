import HBONECore
import HBONEConfig

/// Which service an inbound connection was for (`destination_service` in the destination's metrics
/// and access log, what Kiali draws its graph from), guessed as ztunnel does: the destination only
/// sees a workload address and a port.
extension ProxyState {
    /// The service the client named in `forwarded: host=` when `workload` is one of its endpoints
    /// (so a client cannot attribute its traffic to a service the workload is not in); else, of
    /// the workload's services, the one whose target port is `port` (the first by key, so the
    /// answer does not depend on dictionary order); nil when none is.
    func inboundService(of workload: Workload, port: UInt16, claimedHost: Substring?) -> Service? {
        var best: (key: String, service: Service)?
        for (key, endpointPorts) in workload.services {
            guard let s = servicesByKey[key] else { continue }
            if let claimedHost, s.hostname.utf8.elementsEqual(claimedHost.utf8) { return s }
            if let b = best, b.key < key { continue }
            if Self.targets(port, service: s, endpointPorts: endpointPorts) { best = (key, s) }
        }
        return best?.service
    }

    /// Whether a service port of `service` reaches `port` on the workload: its target port is it
    /// (0 means the service port itself), or the workload's own mapping says so (a named port).
    static func targets(_ port: UInt16, service: Service, endpointPorts: [UInt16: UInt16]) -> Bool {
        func reaches(_ ports: [UInt16: UInt16]) -> Bool { ports.contains { $0.value == port || ($0.value == 0 && $0.key == port) } }
        return reaches(service.ports) || reaches(endpointPorts)
    }
}
