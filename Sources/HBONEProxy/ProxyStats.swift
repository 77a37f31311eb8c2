import Atomics
import HBONECore
import Synchronization

/// One loop's counters. Only the loop writes (relaxed, uncontended); scrapes read and sum all loops.
final class ProxyStats: Sendable {
    let tunnelsOpenedInbound = ManagedAtomic<UInt64>(0)
    let tunnelsOpenedOutbound = ManagedAtomic<UInt64>(0)
    let tunnelsClosedInbound = ManagedAtomic<UInt64>(0)
    let tunnelsClosedOutbound = ManagedAtomic<UInt64>(0)
    let tunnelsFailed = ManagedAtomic<UInt64>(0)
    let denied = ManagedAtomic<UInt64>(0)
    let bytesSent = ManagedAtomic<UInt64>(0)
    let bytesReceived = ManagedAtomic<UInt64>(0)
    let handshakes = ManagedAtomic<UInt64>(0)
    let handshakeFailures = ManagedAtomic<UInt64>(0)
    let handshakeNanos = ManagedAtomic<UInt64>(0)
    let hboneConnectionsInbound = ManagedAtomic<Int>(0)
    let hboneConnectionsOutbound = ManagedAtomic<Int>(0)
    let openTunnels = ManagedAtomic<Int>(0)
    let openInbound = ManagedAtomic<Int>(0)
    /// Accepted application sockets open now (ztunnel's `istio_tcp_sockets_open`): inbound
    /// plaintext ones (destination; inbound HBONE counts its TCP connections instead), and the
    /// captured and SOCKS5 ones of outbound tunnels (source).
    let plaintextSocketsInbound = ManagedAtomic<Int>(0)
    let socketsOutbound = ManagedAtomic<Int>(0)
    let failureReasons = ReasonCounts()
    /// Failed accepts by reason (emfile, enfile, enobufs, enomem, other).
    let acceptFailures = ReasonCounts()
    /// Peers' HTTP/2 protocol errors by reason (flood, rapid_reset, compression, flow_control, …).
    let h2ProtocolErrors = ReasonCounts()
    let pooledConnections = ManagedAtomic<Int>(0)
    /// Authorization decisions taken again for open inbound tunnels after a new snapshot.
    let policyRechecks = ManagedAtomic<UInt64>(0)
    /// `forwarded` claims from peers that may not make them (ignored).
    let untrustedAttributions = ManagedAtomic<UInt64>(0)
    /// Peers' `baggage` naming a namespace other than their identity's (ignored).
    let untrustedBaggage = ManagedAtomic<UInt64>(0)
    /// Connections counted without their peer's `baggage`: the series it named would have been
    /// one more than `maxBaggageSeries`.
    let baggageSeriesRefused = ManagedAtomic<UInt64>(0)
    /// Peers refused, or connections closed, for a revoked certificate (ztunnel's
    /// `istio_crl_policy_rejections_total`): as server (destination) and as client (source).
    let revokedAsServer = ManagedAtomic<UInt64>(0)
    let revokedAsClient = ManagedAtomic<UInt64>(0)
    /// Connections whose peer's chain could not be checked against new revocation lists (drained).
    let crlUntrackedAsServer = ManagedAtomic<UInt64>(0)
    let crlUntrackedAsClient = ManagedAtomic<UInt64>(0)
    /// ztunnel's `istio_on_demand_dns_total`: connections whose endpoint was looked up by its
    /// hostname, by the series' label text (source workload and hostname).
    let onDemandDNS = ReasonCounts()
    /// Hostname lookups that gave no address to connect to for a reason other than the name having
    /// none: no_answer, error_answer (SERVFAIL, REFUSED, malformed), truncated, overload.
    let onDemandDNSFailures = ReasonCounts()
    let shard: MetricsShard
    let handshakeDurations = DurationHistogram()
    let dns = DNSStats()

    /// `baggageBudget`: one for all the proxy's loops.
    init(baggageBudget: BaggageSeriesBudget = BaggageSeriesBudget()) {
        shard = MetricsShard(baggageBudget: baggageBudget)
    }

    func tunnelEstablished(_ d: ConnectionInfo.Direction) {
        (d == .inbound ? tunnelsOpenedInbound : tunnelsOpenedOutbound).wrappingIncrement(ordering: .relaxed)
    }

    func handshakeSucceeded(nanoseconds: UInt64) {
        handshakes.wrappingIncrement(ordering: .relaxed)
        handshakeNanos.wrappingIncrement(by: nanoseconds, ordering: .relaxed)
        handshakeDurations.observe(nanoseconds: nanoseconds)
    }

    func handshakeFailed(reason: String) {
        handshakeFailures.wrappingIncrement(ordering: .relaxed)
        failureReasons.add(reason)
    }

    func revoked(asServer: Bool) {
        (asServer ? revokedAsServer : revokedAsClient).wrappingIncrement(ordering: .relaxed)
    }
}

/// Handshake failures by reason. Failures are rare, so a lock here costs nothing on the data path.
final class ReasonCounts: Sendable {
    private let counts = Locked<[String: UInt64]>([:])
    func add(_ reason: String) { counts.withLock { $0[reason, default: 0] += 1 } }
    var snapshot: [String: UInt64] { counts.withLock { $0 } }
}
