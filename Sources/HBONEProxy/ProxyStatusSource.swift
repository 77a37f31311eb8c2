/// Another part of the process that reports through the proxy's admin views: the control-plane
/// clients add what keeps the proxy from being ready, a `controlPlane` section to `/config_dump`,
/// and their metric families. Called on the admin thread; must be cheap and thread-safe.
public protocol ProxyStatusSource: Sendable {
    var readinessPending: [String] { get }
    /// Top-level `/config_dump` sections (JSON-serializable), e.g. `controlPlane`.
    func configDump() -> [String: Any]
    /// Whole metric families in the Prometheus text format.
    func prometheusText() -> String
}
