import HBONEProxy
import HBONEInPod

/// In-pod mode's part of the admin views: readiness waits for the CNI agent's first snapshot,
/// `/config_dump` gains `zds`, metrics count ZDS ACKs and NACKs and the pods served, in ztunnel's
/// `workload_manager_*` series (Istio's ztunnel dashboard draws them).
struct InPodReport: ProxyStatusSource {
    let client: ZDSClient
    let sources: ConfigSources
    let proxy: Proxy

    var readinessPending: [String] {
        let s = client.status
        guard !s.snapshotReceived else { return [] }
        return ["ZDS: waiting for the CNI agent's snapshot on \(client.path)" + (s.lastError.map { " (\($0))" } ?? "")]
    }

    func configDump() -> [String: Any] {
        let s = client.status
        return ["zds": ["uds": client.path, "connected": s.connected, "snapshotReceived": s.snapshotReceived,
                        "lastError": s.lastError as Any, "acks": s.acks, "nacks": s.nacks, "lastNack": s.lastNACK as Any] as [String: Any]]
    }

    func prometheusText() -> String {
        let s = client.status
        return PrometheusText.family("hbone_zds_connected", "gauge", "1 while connected to the CNI agent")
            + "hbone_zds_connected \(s.connected ? 1 : 0)\n"
            + PrometheusText.family("hbone_zds_responses_total", "counter", "ZDS requests answered, by outcome")
            + "hbone_zds_responses_total{outcome=\"ack\"} \(s.acks)\nhbone_zds_responses_total{outcome=\"nack\"} \(s.nacks)\n"
            + workloadManagerText()
    }

    /// A pod is active once it is served under its own SVID, pending while that is still to come.
    func workloadManagerText() -> String {
        let state = proxy.state
        let active = state.pods.values.filter { state.identities[$0.workload.identity] != nil }.count
        let (started, stopped) = sources.podTransitions
        return PrometheusText.family("workload_manager_active_proxy_count", "gauge", "The total number current workloads with active proxies")
            + "workload_manager_active_proxy_count \(active)\n"
            + PrometheusText.family("workload_manager_pending_proxy_count", "gauge", "The total number current workloads with pending proxies")
            + "workload_manager_pending_proxy_count \(state.pods.count - active)\n"
            + PrometheusText.family("workload_manager_proxies_started_total", "counter", "The total number of proxies that were started")
            + "workload_manager_proxies_started_total \(started)\n"
            + PrometheusText.family("workload_manager_proxies_stopped_total", "counter", "The total number of proxies that were stopped")
            + "workload_manager_proxies_stopped_total \(stopped)\n"
    }
}
