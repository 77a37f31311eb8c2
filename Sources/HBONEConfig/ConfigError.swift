/// A config problem located by file, line and path (`workloads[1].workloadIps[0]`).
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let line: Int?
    public let path: String
    public let reason: String

    public init(file: String, line: Int?, path: String, reason: String) {
        self.file = file
        self.line = line
        self.path = path
        self.reason = reason
    }

    /// A bad value of an environment variable (ztunnel's): it has no line, the variable is the path.
    static func environment(_ name: String, _ reason: String, file: String) -> ConfigError {
        ConfigError(file: file, line: nil, path: "environment \(name)", reason: reason)
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return path.isEmpty ? "\(location): \(reason)" : "\(location): \(path): \(reason)"
    }
}
