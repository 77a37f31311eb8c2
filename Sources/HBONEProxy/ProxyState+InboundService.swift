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

extension ProxyState {
    /// A CONNECT naming a service reaches `workload` only if it is one of that service's endpoints
    /// (the one in its own namespace when several share the hostname, as ztunnel prefers), on a
    /// port the service has, translated as outbound translates it: the workload's own mapping,
    /// else the service's target port (0: the service port itself).
    func serviceTarget(of workload: Workload, hostname: String, port: UInt16) -> ServiceTarget {
        var found: (key: String, service: Service)?
        for key in workload.services.keys {
            guard let s = servicesByKey[key], s.hostname == hostname else { continue }
            if let f = found, f.service.namespace == workload.namespace || (s.namespace != workload.namespace && f.key < key) { continue }
            found = (key, s)
        }
        guard let (key, s) = found else {
            guard servicesByHostname[hostname] != nil else { return .refused(status: 503, reason: "no service \(hostname)") }
            return .refused(status: 400, reason: "\(workload.namespace)/\(workload.name) is not an endpoint of \(hostname)")
        }
        let endpointPorts = workload.services[key] ?? [:]
        if let t = endpointPorts[port], t != 0 { return .target(s, port: t) }
        if let t = s.ports[port] { return .target(s, port: t == 0 ? port : t) }
        if endpointPorts[port] != nil { return .target(s, port: port) }
        return .refused(status: 400, reason: "service \(key) has no port \(port)")
    }
}
