import HBONEProxy
import HBONEInPod

/// In-pod mode's part of the admin views: readiness waits for the CNI agent's first snapshot,
/// `/config_dump` gains `zds`, metrics count ZDS ACKs and NACKs.
struct InPodReport: ProxyStatusSource {
    let client: ZDSClient

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
    }
}
