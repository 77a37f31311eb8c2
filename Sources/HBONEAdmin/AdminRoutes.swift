import Foundation
import HBONECore
import HBONEProxy

/// What each admin port answers. Pure over the proxy's read-only views, so it is testable without sockets.
public struct AdminRoutes: Sendable {
    public enum Port: Sendable { case admin, metrics, readiness }

    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]
        public var headers: [String: String]

        public init(status: Int, contentType: String, body: String, headers: [String: String] = [:]) {
            self.init(status: status, contentType: contentType, bytes: Array(body.utf8), headers: headers)
        }

        public init(status: Int, contentType: String, bytes: [UInt8], headers: [String: String] = [:]) {
            self.status = status
            self.contentType = contentType
            self.body = bytes
            self.headers = headers
        }
    }

    /// What a request gets: a response now, or one built later (a CPU profile) on the admin loop.
    public enum Answer {
        case now(Response)
        case later(Deferred)
    }

    /// An answer that takes `duration`: `tick` every `tickInterval` until then, `complete` builds
    /// the response; `cancel` instead when the client went away first.
    public final class Deferred {
        public let duration: UInt64
        public let tickInterval: UInt64
        let tick: () -> Void
        let complete: () -> Response
        let cancel: () -> Void

        init(duration: UInt64, tickInterval: UInt64, tick: @escaping () -> Void, complete: @escaping () -> Response, cancel: @escaping () -> Void) {
            self.duration = duration
            self.tickInterval = tickInterval
            self.tick = tick
            self.complete = complete
            self.cancel = cancel
        }
    }

    let proxy: Proxy
    let version: String
    let onQuit: @Sendable () -> Void

    public init(proxy: Proxy, version: String, onQuit: @escaping @Sendable () -> Void) {
        self.proxy = proxy
        self.version = version
        self.onQuit = onQuit
    }

    static let adminEndpoints: [(String, String, String)] = [
        ("GET", "/", "this list"),
        ("GET", "/config_dump", "workloads, services, policies, certificates, effective config (JSON)"),
        ("POST", "/quitquitquit", "graceful shutdown: stop accepting, GOAWAY, drain, exit"),
        ("POST", "/logging[?level=L]", "show the levels; set all (trace..off) or per scope (hbone:debug,access:info)"),
        ("GET", "/stats/prometheus", "metrics in Prometheus text format (also /metrics)"),
        ("GET", "/stats", "the proxy's counters as plain name: value lines"),
        ("GET", "/memory", "heap in use, resident memory, open tunnels and connections (JSON)"),
        ("GET", "/healthz/ready", "readiness"),
        ("GET", "/debug/pprof/profile", "CPU profile, pprof format (?seconds=1-300, default 10; ?frequency=1-1000 Hz, default 100)"),
        ("GET", "/debug/pprof/heap", "heap profile, pprof format: allocations sampled while heap profiling is active, in use and in all"),
        ("POST", "/debug/pprof/heap/profiling", "query or toggle heap profiling with ?activate=true|false (GET too, as ztunnel)"),
    ]

    public func handle(_ port: Port, _ request: HTTPRequestParser.Request) -> Answer {
        let routes: [String: String]   // path → method
        switch port {
        case .admin:
            routes = ["/": "GET", "/config_dump": "GET", "/quitquitquit": "POST", "/logging": "POST",
                      "/stats/prometheus": "GET", "/metrics": "GET", "/healthz/ready": "GET", "/stats": "GET", "/memory": "GET",
                      "/debug/pprof/profile": "GET", "/debug/pprof/heap": "GET", "/debug/pprof/heap/profiling": "GET|POST"]
        case .metrics:
            routes = ["/metrics": "GET", "/stats/prometheus": "GET"]
        case .readiness:
            routes = ["/healthz/ready": "GET"]
        }
        guard let method = routes[request.path] else {
            return .now(Response(status: 404, contentType: "text/plain", body: "not found: \(request.path)\n"))
        }
        let allowed = method.split(separator: "|").flatMap { $0 == "GET" ? ["GET", "HEAD"] : [String($0)] }
        guard allowed.contains(request.method) else {
            return .now(Response(status: 405, contentType: "text/plain", body: "\(request.path) takes \(method.replacingOccurrences(of: "|", with: " or "))\n",
                                 headers: ["Allow": allowed.joined(separator: ", ")]))
        }
        switch request.path {
        case "/debug/pprof/profile": return profile(request)
        case "/debug/pprof/heap": return .now(heapProfile())
        case "/debug/pprof/heap/profiling": return .now(heapProfiling(request))
        default: break
        }
        return .now(respond(request))
    }

    private func respond(_ request: HTTPRequestParser.Request) -> Response {
        switch request.path {
        case "/":
            let lines = Self.adminEndpoints.map { "\($0.0.padding(toLength: 5, withPad: " ", startingAt: 0)) \($0.1.padding(toLength: 22, withPad: " ", startingAt: 0)) \($0.2)" }
            return Response(status: 200, contentType: "text/plain", body: "hbone \(version) admin\n" + lines.joined(separator: "\n") + "\n")
        case "/config_dump":
            let dump = proxy.configDump(version: version)
            let data = (try? JSONSerialization.data(withJSONObject: dump, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
            return Response(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
        case "/quitquitquit":
            onQuit()
            return Response(status: 200, contentType: "text/plain", body: "OK\n")
        case "/logging":
            guard let spec = request.query["level"] else {
                return Response(status: 200, contentType: "text/plain", body: "levels: \(log.levels)\n")
            }
            if let problem = log.setLevels(spec) {
                return Response(status: 400, contentType: "text/plain",
                                body: "\(problem); give a level (trace, debug, info, warn, error, off) or scope:level pairs (scopes: \(Log.scopes.joined(separator: ", "))); now \(log.levels)\n")
            }
            return Response(status: 200, contentType: "text/plain", body: "levels: \(log.levels)\n")
        case "/stats":
            let lines = proxy.totals.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                + ["open_tunnels: \(proxy.openTunnels)", "log_lines_dropped: \(log.droppedLines)",
                   "admin_connections_refused: \(AdminConnection.refused)"]
            return Response(status: 200, contentType: "text/plain", body: lines.joined(separator: "\n") + "\n")
        case "/memory":
            let memory: [String: Any] = ["heap_in_use_bytes": proxy.heapInUse, "resident_bytes": Proxy.residentBytes(),
                                         "open_tunnels": proxy.openTunnels, "workers": proxy.workers]
            let data = (try? JSONSerialization.data(withJSONObject: memory, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
            return Response(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
        case "/metrics", "/stats/prometheus":
            let admin = "# HELP hbone_admin_connections_refused_total Admin, metrics and readiness connections closed at once: their port had its limit open\n"
                + "# TYPE hbone_admin_connections_refused_total counter\nhbone_admin_connections_refused_total \(AdminConnection.refused)\n"
            return Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: proxy.prometheusText(version: version) + admin)
        case "/healthz/ready":
            let pending = proxy.readinessPending
            if pending.isEmpty { return Response(status: 200, contentType: "text/plain", body: "ready\n") }
            return Response(status: 500, contentType: "text/plain", body: "not ready:\n" + pending.map { "- " + $0 }.joined(separator: "\n") + "\n")
        default:
            return Response(status: 404, contentType: "text/plain", body: "not found\n")
        }
    }
}
