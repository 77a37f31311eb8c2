import HBONECore

/// A YAML node with its path in the document, for errors that say where (`hbone.listen.socks5`).
///
/// The path is built only when an error needs it: a reader keeps its parent's path and its own
/// key or position, so reading 100,000 workloads makes one path string per workload, not one per field.
struct YAMLReader {
    let tree: YAMLTree
    let index: Int32
    let file: String
    private let base: String
    private let step: Step

    private enum Step {
        case none
        case key(String)
        case item(Int)
    }

    private init(tree: YAMLTree, index: Int32, file: String, base: String, step: Step) {
        self.tree = tree
        self.index = index
        self.file = file
        self.base = base
        self.step = step
    }

    var path: String {
        switch step {
        case .none: return base
        case let .key(key): return base.isEmpty ? key : "\(base).\(key)"
        case let .item(i): return "\(base)[\(i)]"
        }
    }

    var node: YAMLTree.Node { tree.node(index) }

    var line: Int? { Int(node.line) }

    func error(_ reason: String) -> ConfigError {
        ConfigError(file: file, line: line, path: path, reason: reason)
    }

    /// The same node under another path (errors about a field found by a later check).
    func at(_ path: String) -> YAMLReader {
        YAMLReader(tree: tree, index: index, file: file, base: path, step: .none)
    }

    /// The documents of a YAML stream, read for `file`'s errors.
    static func documents(yaml text: String, file: String) throws(ConfigError) -> [YAMLReader] {
        let tree: YAMLTree
        do { tree = try YAMLTree(yaml: text) } catch {
            throw ConfigError(file: file, line: error.line, path: "", reason: "invalid YAML: \(error)")
        }
        return tree.documents.map { YAMLReader(tree: tree, index: $0, file: file, base: "", step: .none) }
    }

    var isScalar: Bool { node.kind == .scalar }

    /// A quoted scalar (`"80"`): a string even where it looks like a number.
    var isQuoted: Bool { node.kind == .scalar && (node.style == .singleQuoted || node.style == .doubleQuoted) }

    var isNull: Bool {
        let n = node
        guard n.kind == .scalar, n.tag != .other else { return false }
        return n.tag == .null || (n.style == .plain && ["", "~", "null", "Null", "NULL"].contains(n.string))
    }

    /// The entries of a mapping; fails on anything else and on keys not in `allowed` (typos must not pass silently).
    func mapping(allowed: Set<String>? = nil) throws(ConfigError) -> [(key: String, value: YAMLReader)] {
        guard node.kind == .mapping else { throw error("expected a mapping") }
        let entries = tree.children(of: index)
        let here = path
        func child(_ key: String, _ index: Int32) -> YAMLReader {
            YAMLReader(tree: tree, index: index, file: file, base: here, step: .key(key))
        }
        var out: [(key: String, value: YAMLReader)] = []
        out.reserveCapacity(entries.count / 2)
        // Most mappings are a handful of fields, where a scan beats building a set per workload.
        var seen: Set<String>? = entries.count > 32 ? Set(minimumCapacity: entries.count / 2) : nil
        var i = entries.startIndex
        while i < entries.endIndex {
            let k = entries[i], v = entries[i + 1]
            i += 2
            let keyNode = tree.node(k)
            guard keyNode.kind == .scalar else { throw error("mapping keys must be scalars") }
            let key = keyNode.string
            // Errors about a key point at the key's own line.
            let duplicate = seen != nil ? !seen!.insert(key).inserted : out.contains(where: { $0.key == key })
            if duplicate { throw child(key, k).error("duplicate key") }
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

    /// A list's items, each made when read.
    struct Items: RandomAccessCollection {
        fileprivate let list: YAMLReader?
        fileprivate let indexes: ArraySlice<Int32>
        fileprivate let path: String

        static let none = Items(list: nil, indexes: [], path: "")

        var startIndex: Int { 0 }
        var endIndex: Int { indexes.count }

        subscript(position: Int) -> YAMLReader {
            YAMLReader(tree: list!.tree, index: indexes[indexes.startIndex + position], file: list!.file, base: path, step: .item(position))
        }
    }

    /// A list's items; null is an empty list.
    func sequence() throws(ConfigError) -> Items {
        if isNull { return .none }
        guard node.kind == .sequence else { throw error("expected a list") }
        return Items(list: self, indexes: tree.children(of: index), path: path)
    }

    func string() throws(ConfigError) -> String {
        let n = node
        guard n.kind == .scalar else { throw error("expected a string") }
        return n.string
    }

    func nonEmptyString() throws(ConfigError) -> String {
        let s = try string()
        if s.isEmpty { throw error("must not be empty") }
        return s
    }

    func int(in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard isScalar, let v = Int(node.string) else { throw error("expected an integer") }
        guard range.contains(v) else { throw error("must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func double(in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard isScalar, let v = Double(node.string) else { throw error("expected a number") }
        guard range.contains(v) else { throw error("must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func bool() throws(ConfigError) -> Bool {
        guard isScalar else { throw error("expected true or false") }
        switch node.string { case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw error("expected true or false") }
    }

    /// One of an enum's spellings (ztunnel's: `Healthy`, `Failover`, …), exactly.
    func named<E: RawRepresentable & CaseIterable>(_: E.Type) throws(ConfigError) -> E where E.RawValue == String {
        let s = try string()
        guard let v = E(rawValue: s) else {
            throw error("\"\(s.prefix(40))\" must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
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

extension Optional where Wrapped == YAMLReader {
    /// An optional field's items: absent is an empty list.
    func sequence() throws(ConfigError) -> YAMLReader.Items {
        guard let reader = self else { return .none }
        return try reader.sequence()
    }
}
