import Atomics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Severity of a log line. `access` lines are the per-connection access log and print at `info`.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case trace = 0, debug, info, warn, error, off

    public init?(name: String) {
        switch name.lowercased() {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "warn", "warning": self = .warn
        case "error": self = .error
        case "off": self = .off
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .trace: return "trace"
        case .debug: return "debug"
        case .info: return "info"
        case .warn: return "warn"
        case .error: return "error"
        case .off: return "off"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

public enum LogFormat: String, Sendable { case logfmt, json }

/// One process-wide logger writing whole lines to stderr (ztunnel writes its access log there too).
/// A line is built outside the lock and written with one write(2), so lines from loops never interleave.
public final class Log: Sendable {
    public static let shared = Log()

    /// Where lines go. A struct, not a tuple: a closure inside a tuple stored as `Locked`'s generic
    /// value is re-wrapped in two reabstraction thunks at every `withLock`, so after n lines the
    /// sink was a chain of 2n thunks and a call to it overflowed the stack.
    private struct Output {
        var format = LogFormat.logfmt
        var sink: (@Sendable (String) -> Void)?
        var writer: LogWriter?
    }

    private let state = Locked(Output())
    /// Read by every `enabled` check on every loop (each access-log line asks): relaxed atomics,
    /// not a lock that all loops would share. One per scope: `hbone` (everything else) and `access`.
    private let levelValue = ManagedAtomic<Int>(LogLevel.info.rawValue)
    private let accessLevelValue = ManagedAtomic<Int>(LogLevel.info.rawValue)

    /// The scopes a level can be set for (`/logging?level=hbone:debug,access:off`).
    public static let scopes = ["hbone", "access"]

    public init() {}

    /// The level of every scope (setting it sets both, as a bare `/logging?level=debug` does).
    public var level: LogLevel {
        get { LogLevel(rawValue: levelValue.load(ordering: .relaxed)) ?? .info }
        set {
            levelValue.store(newValue.rawValue, ordering: .relaxed)
            accessLevelValue.store(newValue.rawValue, ordering: .relaxed)
        }
    }

    /// `scope:level` pairs, e.g. `hbone:info,access:info`.
    public var levels: String {
        "hbone:\(LogLevel(rawValue: levelValue.load(ordering: .relaxed)) ?? .info),access:\(LogLevel(rawValue: accessLevelValue.load(ordering: .relaxed)) ?? .info)"
    }

    /// Sets levels from `level` (all scopes) or `scope:level,…` (ztunnel's and Envoy's style).
    /// Returns why not, and changes nothing, when any part is wrong.
    public func setLevels(_ spec: String) -> String? {
        var changes: [(String?, LogLevel)] = []
        for part in spec.split(separator: ",") {
            let pieces = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pieces.count == 1 {
                guard let l = LogLevel(name: pieces[0]) else { return "unknown level \"\(pieces[0].prefix(20))\"" }
                changes.append((nil, l))
            } else {
                guard Log.scopes.contains(pieces[0]) else { return "unknown scope \"\(pieces[0].prefix(20))\" (scopes: \(Log.scopes.joined(separator: ", ")))" }
                guard let l = LogLevel(name: pieces[1]) else { return "unknown level \"\(pieces[1].prefix(20))\"" }
                changes.append((pieces[0], l))
            }
        }
        guard !changes.isEmpty else { return "no level given" }
        for (scope, l) in changes {
            switch scope {
            case nil: level = l
            case "access"?: accessLevelValue.store(l.rawValue, ordering: .relaxed)
            default: levelValue.store(l.rawValue, ordering: .relaxed)
            }
        }
        return nil
    }

    /// From here on lines go through a `LogWriter` thread (the running proxy: a stalled stderr
    /// must not block a loop). Tools and tests write directly.
    public func useBackgroundWriter(_ writer: LogWriter = LogWriter()) { state.withLock { $0.writer = writer } }

    /// Lines dropped because stderr could not keep up.
    public var droppedLines: UInt64 { state.withLock { $0.writer }?.dropped.load(ordering: .relaxed) ?? 0 }

    /// Waits for queued lines to reach stderr (at exit).
    public func flush() { state.withLock { $0.writer }?.flush() }

    public var format: LogFormat {
        get { state.withLock { $0.format } }
        set { state.withLock { $0.format = newValue } }
    }

    /// Tests capture lines here instead of stderr.
    public func setSink(_ sink: (@Sendable (String) -> Void)?) { state.withLock { $0.sink = sink } }

    @inline(__always) public func enabled(_ level: LogLevel) -> Bool { level.rawValue >= levelValue.load(ordering: .relaxed) }
    /// For the `access` scope's lines.
    @inline(__always) public func accessEnabled(_ level: LogLevel) -> Bool { level.rawValue >= accessLevelValue.load(ordering: .relaxed) }

    public func trace(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:], target: String = "hbone") {
        if enabled(.trace) { emit(.trace, target, message(), fields()) }
    }
    public func debug(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:], target: String = "hbone") {
        if enabled(.debug) { emit(.debug, target, message(), fields()) }
    }
    public func info(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:], target: String = "hbone") {
        if enabled(.info) { emit(.info, target, message(), fields()) }
    }
    public func warn(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:], target: String = "hbone") {
        if enabled(.warn) { emit(.warn, target, message(), fields()) }
    }
    public func error(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> KeyValuePairs<String, String> = [:], target: String = "hbone") {
        if enabled(.error) { emit(.error, target, message(), fields()) }
    }

    /// Writes one line with ordered fields (used by the access log, whose field order is stable).
    public func emit(_ level: LogLevel, _ target: String, _ message: String, _ fields: KeyValuePairs<String, String>) {
        emit(level, target, message, fields.map { ($0.key, $0.value) })
    }

    public func emit(_ level: LogLevel, _ target: String, _ message: String, _ fields: [(String, String)]) {
        let (format, sink, writer) = state.withLock { ($0.format, $0.sink, $0.writer) }
        let time = Log.timestamp()
        var line: String
        switch format {
        case .logfmt:
            line = "\(time) \(level.description) \(target) \(message)"
            for (k, v) in fields { line += " \(k)=\(Log.logfmtValue(v))" }
        case .json:
            line = "{\"time\":\"\(time)\",\"level\":\"\(level)\",\"scope\":\(Log.jsonString(target)),\"message\":\(Log.jsonString(message))"
            for (k, v) in fields { line += ",\(Log.jsonString(k)):\(Log.jsonString(v))" }
            line += "}"
        }
        line += "\n"
        if let sink {
            sink(line)
            return
        }
        if let writer {
            writer.enqueue(Array(line.utf8))
            return
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let micros = Int32(ts.tv_nsec / 1000)
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(pad(micros, 6))Z"
    }

    public static func logfmtValue(_ v: String) -> String {
        if !v.isEmpty && !v.utf8.contains(where: { $0 <= 32 || $0 == 34 || $0 == 61 || $0 == 92 || $0 >= 127 }) { return v }
        return jsonString(v)
    }

    public static func jsonString(_ v: String) -> String {
        var out = "\""
        for scalar in v.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// The process logger.
public let log = Log.shared
