import HBONECore
import HBONEIdentity
import HBONEConfig

/// How one application connection leaves this node: a pure function of its source address, its
/// resolved destination and the snapshot. HBONE needs a local source workload with a certificate;
/// nothing may loop back into the proxy's own ports; unknown destinations were already resolved
/// to plain TCP (passthrough) or to nothing (a hostname the mesh does not know).
enum OutboundPlan: Equatable {
    /// Through HBONE: CONNECT `authority` on a pooled connection to `proxy`, as `source`.
    case hbone(source: Workload, proxy: SocketAddress, authority: SocketAddress, expected: PeerIdentities)
    /// Through another network's gateway: the outer tunnel pooled to the gateway, the inner one
    /// as `source` to the service's endpoint behind it.
    case throughGateway(source: Workload, GatewayRoute)
    /// Plain TCP to the address.
    case direct(SocketAddress)
    /// Refused before anything is opened; `socksCode` is the RFC 1928 reply.
    case refuse(reason: String, socksCode: UInt8)
}

extension ProxyState {
    /// `bound`: the addresses this worker's listeners actually bound (a port-0 listener included).
    func planOutbound(src: SocketAddress, destination: Destination?, original: SocketAddress, bound: [SocketAddress] = []) -> OutboundPlan {
        guard let destination else { return .refuse(reason: "unknown destination \(original)", socksCode: Socks5Parser.hostUnreachable) }
        switch destination.route {
        case let .hbone(proxy, authority, expected):
            let source: Workload
            do { source = try meshSource(src) } catch { return error.plan }
            if isProxyItself(authority) {
                return .refuse(reason: "destination \(authority) is the proxy itself", socksCode: Socks5Parser.notAllowed)
            }
            return .hbone(source: source, proxy: proxy, authority: authority, expected: expected)
        case let .throughGateway(route):
            let source: Workload
            do { source = try meshSource(src) } catch { return error.plan }
            if isProxyItself(route.gateway) {
                return .refuse(reason: "network gateway \(route.gateway) is the proxy itself", socksCode: Socks5Parser.notAllowed)
            }
            return .throughGateway(source: source, route)
        case let .direct(dst):
            if isProxyItself(dst) || bound.contains(dst) {
                return .refuse(reason: "destination \(dst) is the proxy itself", socksCode: Socks5Parser.notAllowed)
            }
            return .direct(dst)
        case let .unreachable(reason):
            return .refuse(reason: reason, socksCode: Socks5Parser.hostUnreachable)
        case let .lookup(hostname, _, _):
            // The worker looks the name up and plans the route to the address found.
            Bug.report("outbound plan for \(hostname) before it was looked up")
            return .refuse(reason: "\(hostname) was not looked up", socksCode: Socks5Parser.generalFailure)
        }
    }

    /// HBONE is sent as a local workload that has its certificate.
    private func meshSource(_ src: SocketAddress) throws(SourceRefusal) -> Workload {
        guard let source = localWorkloadsByIP[src.ip] else {
            throw SourceRefusal(plan: .refuse(reason: "source \(src.ip) is not a workload on this node", socksCode: Socks5Parser.notAllowed))
        }
        guard identities[source.identity] != nil else {
            let why = certificateProblems[source.identity].map { ": \($0)" } ?? " yet"
            throw SourceRefusal(plan: .refuse(reason: "no certificate for \(source.identity)\(why)", socksCode: Socks5Parser.generalFailure))
        }
        return source
    }

    private struct SourceRefusal: Error { let plan: OutboundPlan }
}
