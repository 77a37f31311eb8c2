/// TCP keepalive on every socket the proxy accepts or makes (ztunnel's `KEEPALIVE_*`): probes
/// keep middleboxes from dropping a quiet connection, and find a dead peer. Keepalive is not
/// end to end, so an app's own keepalives only reach the proxy in front of it; these stand in.
public struct TCPKeepalive: Sendable, Equatable {
    public var enabled = true
    /// Idle time before the first probe.
    public var time: Duration = .seconds(180)
    /// Between probes.
    public var interval: Duration = .seconds(180)
    /// Unanswered probes before the connection is dropped.
    public var probes = 9
    /// Also TCP_USER_TIMEOUT (ztunnel's `USER_TIMEOUT_ENABLED`): unacknowledged data fails the
    /// connection after as long as keepalive would take (`time + interval × probes`).
    public var userTimeout = false

    public init() {}

    /// TCP_USER_TIMEOUT's value.
    public var userTimeoutMilliseconds: Int {
        Int((time + interval * probes).components.seconds) * 1000
    }
}
