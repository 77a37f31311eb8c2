import Yams
import HBONECore

/// A YAML node with its path in the document, for errors that say where (`hbone.listen.socks5`).
struct YAMLReader {
    let node: Node
    let path: String
    let file: String

    var line: Int? { node.mark?.line }

    func error(_ reason: String) -> ConfigError {
        ConfigError(file: file, line: line, path: path, reason: reason)
    }

    func child(_ key: String, _ node: Node) -> YAMLReader {
        YAMLReader(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    var isNull: Bool {
        if case let .scalar(s) = node { return s.tag == Tag(.null) || (s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)) }
        return false
    }

    /// The entries of a mapping; fails on anything else and on keys not in `allowed` (typos must not pass silently).
    func mapping(allowed: Set<String>? = nil) throws(ConfigError) -> [(key: String, value: YAMLReader)] {
        guard case let .mapping(mapping) = node else { throw error("expected a mapping") }
        var out: [(String, YAMLReader)] = []
        var seen = Set<String>()
        for (k, v) in mapping {
            guard case let .scalar(keyScalar) = k else { throw error("mapping keys must be scalars") }
            let key = keyScalar.string
            // Errors about a key point at the key's own line.
            if !seen.insert(key).inserted { throw child(key, k).error("duplicate key") }
            if let allowed, !allowed.contains(key) {
                throw child(key, k).error("unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            out.append((key, child(key, v)))
        }
        return out
    }

    func fields(allowed: Set<String>) throws(ConfigError) -> [String: YAMLReader] {
        var out: [String: YAMLReader] = [:]
        for (k, v) in try mapping(allowed: allowed) { out[k] = v }
        return out
    }

    func sequence() throws(ConfigError) -> [YAMLReader] {
        if isNull { return [] }
        guard case let .sequence(seq) = node else { throw error("expected a list") }
        return seq.enumerated().map { i, n in YAMLReader(node: n, path: "\(path)[\(i)]", file: file) }
    }

    func string() throws(ConfigError) -> String {
        guard case let .scalar(s) = node else { throw error("expected a string") }
        return s.string
    }

    func nonEmptyString() throws(ConfigError) -> String {
        let s = try string()
        if s.isEmpty { throw error("must not be empty") }
        return s
    }

    func int(in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard case let .scalar(s) = node, let v = Int(s.string) else { throw error("expected an integer") }
        guard range.contains(v) else { throw error("must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func double(in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard case let .scalar(s) = node, let v = Double(s.string) else { throw error("expected a number") }
        guard range.contains(v) else { throw error("must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func bool() throws(ConfigError) -> Bool {
        guard case let .scalar(s) = node else { throw error("expected true or false") }
        switch s.string { case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw error("expected true or false") }
    }

    func port() throws(ConfigError) -> UInt16 {
        UInt16(try int(in: 1...65535))
    }

    func ip() throws(ConfigError) -> IPAddress {
        let s = try string()
        guard let ip = IPAddress(s) else { throw error("\"\(s)\" is not an IP address") }
        return ip
    }

    func socketAddress() throws(ConfigError) -> SocketAddress {
        let s = try string()
        switch SocketAddress.parse(s) {
        case let .success(a): return a
        case let .failure(e): throw error("\"\(s)\": \(e)")
        }
    }

    /// Durations: `250ms`, `10s`, `5m`, `24h`, or a bare number of seconds.
    func duration() throws(ConfigError) -> Duration {
        let s = try string()
        guard let d = parseDuration(s) else { throw error("\"\(s.prefix(40))\" is not a duration (like 500ms, 10s, 5m, 24h; at most 100 years)") }
        return d
    }
}

/// The longest duration accepted anywhere (100 years): beyond it a value is a typo, and the
/// conversions to milliseconds and nanoseconds would overflow (found by fuzzing the config loader).
public let maxDurationSeconds: Double = 100 * 365 * 86400

/// Parses `250ms`, `10s`, `5m`, `24h` or plain seconds. Nil when malformed, negative or longer
/// than `maxDurationSeconds`.
public func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    var seconds: Double?
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        guard let v = Double(text.dropLast(suffix.count)) else { return nil }
        seconds = v * scale
        break
    }
    guard let s = seconds ?? Double(text), s >= 0, s.isFinite, s <= maxDurationSeconds else { return nil }
    return .milliseconds(Int64(s * 1000))
}
