import ArgumentParser
import Foundation
import HBONECore
#if canImport(Glibc)
import Glibc
#endif

/// `hbone admin certs|workloads|policies|config`: readable tables from a running proxy's config_dump.
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Show what a running proxy holds (reads its admin API).")

    enum What: String, ExpressibleByArgument, CaseIterable { case certs, workloads, policies, config }

    @Argument(help: "certs, workloads, policies or config.") var what: What
    @Option(help: "The admin address.") var admin = "127.0.0.1:15000"

    func run() throws {
        guard let address = SocketAddress(admin) else { throw ValidationError("--admin must be ip:port") }
        let body: String
        do {
            body = try AdminCommand.get(address, path: "/config_dump")
        } catch {
            FileHandleOutput.stderr("hbone: cannot read \(admin)/config_dump: \(error)\n")
            throw ExitCode(1)
        }
        guard let dump = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            FileHandleOutput.stderr("hbone: config_dump is not JSON\n")
            throw ExitCode(1)
        }
        print(AdminCommand.render(what, dump), terminator: "")
    }

    static func render(_ what: What, _ dump: [String: Any]) -> String {
        var rows: [[String]] = []
        switch what {
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
                             "\(p["rules"] as? Int ?? 0)", (p["dryRun"] as? Bool ?? false) ? "yes" : "no", "\((p["warnings"] as? [String] ?? []).count)"])
            }
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

    /// A blocking HTTP/1.1 GET (the admin API is plain HTTP on loopback).
    static func get(_ address: SocketAddress, path: String) throws -> String {
        let fd = try connectBlocking(address)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw ValidationError("no HTTP response") }
        guard text.hasPrefix("HTTP/1.1 200") else { throw ValidationError(String(text.prefix { $0 != "\r" })) }
        return String(text[split.upperBound...])
    }
}
