/// ztunnel's logging variables, which Istio's chart sets: `RUST_LOG` (its `logLevel`, a tracing
/// filter: `level` and `target=level` directives, comma-separated) and `LOG_FORMAT` (`json` when
/// `logAsJson`, else plain).
extension Log {
    public struct EnvironmentLevels: Equatable, Sendable {
        /// For `setLevels` (`level` or `scope:level`, comma-separated).
        public var spec: String
        /// Targets that name no part of hbone (another program's modules), ignored.
        public var ignoredTargets: [String]
    }

    /// `RUST_LOG` in hbone's scopes: a bare level sets all; `access` is the access log; `hbone`,
    /// and `ztunnel` or any of its modules (`ztunnel::proxy`), are the proxy's own lines. Later
    /// directives win, as in tracing. Throws the reason for a directive whose level is not one.
    public static func levels(rustLog: String) throws(LogSettingError) -> EnvironmentLevels {
        var parts: [String] = [], ignored: [String] = []
        for raw in rustLog.split(separator: ",") {
            let directive = raw.trimmingSpaces()
            guard !directive.isEmpty else { continue }
            let pieces = directive.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces.count == 2 else {
                guard let level = LogLevel(name: directive) else { throw LogSettingError(directive: directive, reason: "not a level (trace, debug, info, warn, error, off)") }
                parts.append("\(level)")
                continue
            }
            let target = pieces[0].trimmingSpaces(), levelName = pieces[1].trimmingSpaces()
            guard let level = LogLevel(name: levelName) else { throw LogSettingError(directive: directive, reason: "\"\(levelName.prefix(20))\" is not a level") }
            if target == "access" {
                parts.append("access:\(level)")
            } else if target == "hbone" || target == "ztunnel" || target.hasPrefix("ztunnel::") {
                parts.append("hbone:\(level)")
            } else {
                ignored.append(target)
            }
        }
        return EnvironmentLevels(spec: parts.joined(separator: ","), ignoredTargets: ignored)
    }

    public struct LogSettingError: Error, CustomStringConvertible {
        public let directive: String
        public let reason: String
        public var description: String { "RUST_LOG directive \"\(directive.prefix(60))\": \(reason)" }
    }
}

private extension StringProtocol {
    func trimmingSpaces() -> String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
