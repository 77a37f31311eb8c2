import HBONECore
import HBONEIdentity

/// Outbound HBONE connections are shared per (source identity, expected destination identities,
/// destination proxy address), as the reference pools them.
struct PoolKey: Hashable {
    let source: SPIFFEID
    let expected: PeerIdentities
    let proxy: SocketAddress
    /// In-pod mode: connections are made inside the source pod's namespace, so pods never share one.
    var pod: String? = nil
}

/// One loop's pool: no locks (the loop owns it), and a connection still handshaking is shared by
/// every tunnel that asks for the same key meanwhile, so concurrent first uses do one handshake.
final class ConnectionPool {
    private var connections: [PoolKey: [HBONEConnection]] = [:]

    /// A connection with room for one more stream, ready or still handshaking; nil if none.
    func find(_ key: PoolKey) -> HBONEConnection? {
        guard let list = connections[key] else { return nil }
        // Prefer the fullest connection with room, so idle ones can time out.
        var best: HBONEConnection?
        for c in list where c.phase != .draining && c.phase != .closed {
            let room = c.phase == .open ? c.streamCapacity : c.worker.state.settings.pool.maxStreamsPerConnection - c.reservedStreams
            guard room > 0, c.phase != .open || c.isUsable else { continue }
            if best == nil || c.openStreams + c.reservedStreams > best!.openStreams + best!.reservedStreams { best = c }
        }
        return best
    }

    func add(_ c: HBONEConnection, key: PoolKey) {
        c.poolKey = key
        connections[key, default: []].append(c)
    }

    func remove(_ c: HBONEConnection) {
        guard let key = c.poolKey, var list = connections[key] else { return }
        guard list.contains(where: { $0 === c }) else { return }
        c.worker.stats.pooledConnections.wrappingDecrement(ordering: .relaxed)
        list.removeAll { $0 === c }
        connections[key] = list.isEmpty ? nil : list
    }

    var count: Int { connections.values.reduce(0) { $0 + $1.count } }
    var all: [HBONEConnection] { connections.values.flatMap { $0 } }
}
