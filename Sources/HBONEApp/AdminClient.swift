import Foundation
import HBONECore

/// Reads a running proxy's admin API and renders what operators ask for (`hbone admin …`).
public enum AdminClient {
    public enum View: String, CaseIterable, Sendable { case certs, workloads, policies, config, controlplane }

    /// A blocking HTTP/1.1 GET (the admin API is plain HTTP on loopback); the body of a 200.
    public static func get(_ address: SocketAddress, path: String) throws(ToolError) -> String {
        let connection = try BlockingConnection(address)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
        request.withUnsafeBytes { connection.send($0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { connection.receive(into: $0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        // Split as bytes: a String would merge "\r\n" into one Character and never find it.
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let split = (0...max(0, response.count - 4)).first(where: { response.count >= 4 && Array(response[$0..<$0 + 4]) == separator }) else {
            throw ToolError("GET \(path) at \(address): no HTTP response")
        }
        let statusLine = String(decoding: response[..<(response.firstIndex(of: 13) ?? split)], as: UTF8.self)
        let body = String(decoding: response[(split + 4)...], as: UTF8.self)
        guard statusLine.hasPrefix("HTTP/1.1 200") else {
            throw ToolError("GET \(path) at \(address) answered \(statusLine.dropFirst(9))\(body.isEmpty ? "" : ": " + body.prefix(200).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return body
    }

    /// The config_dump of the proxy at `address`, parsed.
    public static func configDump(_ address: SocketAddress) throws(ToolError) -> [String: Any] {
        let body = try get(address, path: "/config_dump")
        guard let dump = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else {
            throw ToolError("config_dump is not JSON")
        }
        return dump
    }

    /// A table (or, for `config`, the settings as JSON) from a config_dump.
    public static func render(_ view: View, _ dump: [String: Any]) -> String {
        var rows: [[String]] = []
        switch view {
        case .certs:
            rows.append(["IDENTITY", "STATE", "SERIAL", "EXPIRES", "DAYS LEFT"])
            let iso = ISO8601DateFormatter()
            for c in dump["certificates"] as? [[String: Any]] ?? [] {
                let leaf = (c["certChain"] as? [[String: Any]])?.first
                let expires = leaf?["expirationTime"] as? String ?? "-"
                let days = iso.date(from: expires).map { String(format: "%.1f", $0.timeIntervalSinceNow / 86400) } ?? "-"
                rows.append([c["identity"] as? String ?? "?", c["state"] as? String ?? "?", leaf?["serialNumber"] as? String ?? "-", expires, days])
            }
        case .workloads:
            rows.append(["NODE", "NAMESPACE", "NAME", "IPS", "PROTOCOL", "IDENTITY", "LOCAL"])
            for w in (dump["workloads"] as? [[String: Any]] ?? []).sorted(by: { ($0["node"] as? String ?? "") < ($1["node"] as? String ?? "") }) {
                rows.append([w["node"] as? String ?? "", w["namespace"] as? String ?? "", w["name"] as? String ?? "",
                             (w["workloadIps"] as? [String] ?? []).joined(separator: ","), w["protocol"] as? String ?? "",
                             w["identity"] as? String ?? "", (w["local"] as? Bool ?? false) ? "yes" : "no"])
            }
        case .policies:
            rows.append(["NAMESPACE", "NAME", "ACTION", "SCOPE", "RULES", "DRY-RUN", "WARNINGS"])
            for p in dump["policies"] as? [[String: Any]] ?? [] {
                let scope = p["scope"] as? String ?? "WorkloadSelector"
                rows.append([p["namespace"] as? String ?? "", p["name"] as? String ?? "", p["action"] as? String ?? "", scope,
                             "\((p["rules"] as? [Any] ?? []).count)", (p["dryRun"] as? Bool ?? false) ? "yes" : "no", "\((p["warnings"] as? [String] ?? []).count)"])
            }
        case .controlplane:
            return controlPlane(dump["controlPlane"] as? [String: Any])
        case .config:
            let data = (try? JSONSerialization.data(withJSONObject: dump["config"] ?? [:], options: [.prettyPrinted, .sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        let widths = rows.reduce(into: [Int](repeating: 0, count: rows.first?.count ?? 0)) { w, row in
            for (i, cell) in row.enumerated() { w[i] = max(w[i], cell.count) }
        }
        return rows.map { row in row.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
            .map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }.joined(separator: "\n") + "\n"
    }

    /// istiod's side: the xDS stream and each type's last ACK and NACK, then each identity's certificate.
    static func controlPlane(_ cp: [String: Any]?) -> String {
        guard let cp else { return "no control plane: this proxy is configured from files only\n" }
        var out = ""
        let xds = cp["xds"] as? [String: Any] ?? [:]
        if xds["enabled"] as? Bool == true {
            let state = xds["connected"] as? Bool == true ? "connected" : "not connected"
            out += "xDS \(xds["address"] as? String ?? "?"): \(state), \(xds["synced"] as? Bool == true ? "synced" : "not synced yet")"
            if let e = xds["lastError"] as? String { out += " (last error: \(e))" }
            out += "\n"
            for (type, value) in (xds["types"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
                let t = value as? [String: Any] ?? [:]
                out += "  \(type.split(separator: "/").last ?? ""): ACKed version \(t["lastAckedVersion"] as? String ?? "-") nonce \(t["lastAckedNonce"] as? String ?? "-")"
                out += ", \(t["acks"] as? Int ?? 0) ACKs, \(t["nacks"] as? Int ?? 0) NACKs"
                if let reason = t["lastNackReason"] as? String { out += "; last NACK (nonce \(t["lastNackNonce"] as? String ?? "-")): \(reason)" }
                out += "\n"
            }
        } else {
            out += "xDS: off (workloads and policies from the config file)\n"
        }
        let ca = cp["ca"] as? [String: Any] ?? [:]
        guard ca["enabled"] as? Bool == true else { return out + "Istio CA: off\n" }
        out += "Istio CA \(ca["address"] as? String ?? "?"):\n"
        var rows = [["IDENTITY", "STATE", "VALID UNTIL", "NEXT ATTEMPT", "LAST ERROR"]]
        for (id, value) in (ca["certificates"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
            let c = value as? [String: Any] ?? [:]
            rows.append([id, c["state"] as? String ?? "?", c["validUntil"] as? String ?? "-", c["nextAttempt"] as? String ?? "-",
                         c["lastError"] as? String ?? "-"])
        }
        let widths = rows.reduce(into: [Int](repeating: 0, count: 5)) { w, row in
            for (i, cell) in row.enumerated() { w[i] = max(w[i], cell.count) }
        }
        for row in rows {
            out += "  " + row.enumerated().map { i, c in i == 4 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        return out
    }
}
