import Foundation
import HBONEProxy
import HBONEControlPlane
import HBONEXDS

/// The control plane's part of the admin views: readiness waits for the first ACK of every xDS type
/// (never withdrawn), `/config_dump` gains `controlPlane`, metrics gain the xDS and CA families.
struct ControlPlaneReport: ProxyStatusSource {
    let controlPlane: ControlPlane

    var readinessPending: [String] {
        let s = controlPlane.status
        guard controlPlane.usesXDS, !s.xdsSynced else { return [] }
        let waiting = XDSStore.types.filter { s.types[$0]?.lastACKNonce == nil }
        return ["xDS: waiting for the first ACK of \(waiting.joined(separator: ", "))"
                + (s.xdsLastError.map { " (last error: \($0))" } ?? "")]
    }

    func configDump() -> [String: Any] {
        let s = controlPlane.status
        let iso = ISO8601DateFormatter()
        var xds: [String: Any] = ["enabled": controlPlane.usesXDS]
        if controlPlane.usesXDS {
            xds["address"] = s.xdsAddress ?? ""
            xds["connected"] = s.xdsConnected
            xds["synced"] = s.xdsSynced
            xds["lastError"] = s.xdsLastError as Any
            xds["types"] = Dictionary(uniqueKeysWithValues: s.types.map { type, t in
                (type, ["lastAckedNonce": t.lastACKNonce as Any, "lastAckedVersion": t.lastACKVersion as Any,
                        "lastNackNonce": t.lastNACKNonce as Any, "lastNackReason": t.lastNACKReason as Any,
                        "acks": t.acks, "nacks": t.nacks] as [String: Any])
            })
        }
        var ca: [String: Any] = ["enabled": s.caEnabled]
        if s.caEnabled {
            ca["address"] = s.caAddress ?? ""
            ca["certificates"] = Dictionary(uniqueKeysWithValues: s.certificates.map { id, c in
                (id, ["state": c.state, "validUntil": c.validUntil.map { iso.string(from: $0) } as Any,
                      "nextAttempt": c.renewAt.map { iso.string(from: $0) } as Any, "lastError": c.lastError as Any,
                      "failures": c.failures] as [String: Any])
            })
        }
        return ["controlPlane": ["xds": xds, "ca": ca]]
    }

    func prometheusText() -> String {
        let s = controlPlane.status
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += PrometheusText.family(name, type, help) }
        if controlPlane.usesXDS {
            family("hbone_xds_connected", "gauge", "1 while the xDS stream to istiod is up")
            out += "hbone_xds_connected \(s.xdsConnected ? 1 : 0)\n"
            family("hbone_xds_connection_attempts_total", "counter", "xDS streams started")
            out += "hbone_xds_connection_attempts_total \(s.xdsConnectAttempts)\n"
            family("hbone_xds_connections_total", "counter", "xDS streams that reached istiod")
            out += "hbone_xds_connections_total \(s.xdsStreamsEstablished)\n"
            family("hbone_xds_stream_ends_total", "counter", "xDS streams ended, by how")
            for (reason, n) in s.xdsStreamEnds.sorted(by: { $0.key < $1.key }) {
                out += "hbone_xds_stream_ends_total{reason=\"\(PrometheusText.escaped(reason))\"} \(n)\n"
            }
            family("hbone_xds_messages_total", "counter", "xDS responses received")
            out += "hbone_xds_messages_total \(s.xdsMessagesReceived)\n"
            // ztunnel's series, as Istio's dashboards read them.
            family("istio_xds_connection_terminations_total", "counter", "The total number of completed connections to xds server")
            for (reason, n) in s.xdsTerminations.sorted(by: { $0.key < $1.key }) {
                out += "istio_xds_connection_terminations_total{reason=\"\(reason)\"} \(n)\n"
            }
            // Each family's samples together, as the text format wants them.
            let types = s.types.sorted(by: { $0.key < $1.key })
            func perType(_ name: String, _ help: String, label: String, _ value: (ControlPlaneStatus.TypeState) -> UInt64) {
                family(name, "counter", help)
                for (type, t) in types { out += "\(name){\(label)=\"\(PrometheusText.escaped(type))\"} \(value(t))\n" }
            }
            perType("istio_xds_message_total", "Total number of messages received", label: "url") { $0.messages }
            perType("istio_xds_message_bytes_total", "Total number of bytes received", label: "url") { $0.resourceBytes }
            perType("hbone_xds_acks_total", "xDS responses ACKed, by type", label: "type_url") { $0.acks }
            perType("hbone_xds_nacks_total", "xDS responses NACKed, by type", label: "type_url") { $0.nacks }
        }
        if s.caEnabled {
            family("hbone_ca_requests_total", "counter", "CreateCertificate calls to the Istio CA, by outcome")
            for (outcome, n) in s.caRequests.sorted(by: { $0.key < $1.key }) {
                out += "hbone_ca_requests_total{outcome=\"\(PrometheusText.escaped(outcome))\"} \(n)\n"
            }
            family("hbone_ca_certificates", "gauge", "Local identities by certificate state")
            var byState: [String: Int] = [:]
            for c in s.certificates.values { byState[c.state, default: 0] += 1 }
            for (state, n) in byState.sorted(by: { $0.key < $1.key }) { out += "hbone_ca_certificates{state=\"\(state)\"} \(n)\n" }
        }
        return out
    }
}
