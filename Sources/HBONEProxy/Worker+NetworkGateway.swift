import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONETLS
import HBONEH2

extension Worker {
    /// Double HBONE, to a service on another network through its east-west gateway.
    ///
    /// The application's tunnel gets an HBONE connection of its own to the endpoint behind the
    /// gateway, as ztunnel does: not pooled, since the gateway picks the endpoint once per inner
    /// connection, and a shared one would send every tunnel to the same endpoint. That
    /// connection's TCP side is one end of an in-memory pair; the other end is the downstream of a
    /// gateway leg, an ordinary tunnel whose upstream is a CONNECT on the pooled connection to the
    /// gateway. So the outer tunnel reuses the pool, flow control, timeouts and drain of every
    /// other tunnel, and the inner TLS runs end to end through it.
    func openThroughGateway(_ tunnel: Tunnel, route: GatewayRoute, source: Workload, headers: [H2Header], context: TLSContext,
                            src: SocketAddress, pod: InPodWorkload?) {
        let (inner, outer) = TCPStream.memoryPair(loop: loop, local: src, remote: route.gateway)
        let connection: HBONEConnection
        do {
            connection = try HBONEConnection(worker: self, role: .client, tcp: inner, context: context,
                                             verification: .outbound(expected: route.identities), peer: route.gateway, local: src)
        } catch {
            inner.abort()
            outer.abort()
            tunnel.poolFailed(ProxyError(.internal, .tls, "TLS for the tunnel through network gateway \(route.gateway): \(error)"))
            return
        }
        connection.singleUse = true
        connection.pod = pod
        track(connection)
        connection.reservedStreams += 1
        // The endpoint's proxy learns which network the client's addresses belong to.
        let innerHeaders = headers + [H2Header("x-istio-origin-network", state.settings.network)]
        // Strong, as the pool's waiters: the tunnel stays allocated until the answer, which it
        // ignores if it has ended meanwhile.
        connection.waiters.append { result in
            switch result {
            case let .success(c):
                c.reservedStreams -= 1
                tunnel.attach(c, authority: route.target, headers: innerHeaders)
            case let .failure(error):
                tunnel.poolFailed(error)
            }
        }
        let leg = Tunnel(worker: self, info: tunnel.info, downstream: .socket(outer), carrying: connection)
        leg.pod = pod
        let key = PoolKey(source: source.identity, expected: PeerIdentities(route.gatewayIdentities), proxy: route.gateway, pod: pod?.uid)
        openPooled(leg, key: key, authority: route.target, headers: headers, context: context, src: src, pod: pod)
    }
}
