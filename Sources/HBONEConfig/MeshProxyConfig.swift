import Foundation
import HBONECore

/// Istio's ProxyConfig as ztunnel reads it: the mesh config's `defaultConfig` (the `istio`
/// ConfigMap mounted at `./etc/istio/config/mesh`, when it is), then the `PROXY_CONFIG` variable
/// (JSON or YAML) over it. Of its many fields ztunnel acts on five, and so does this; the others
/// are Envoy's and are passed over.
///
/// Each one stands in for a variable the environment may set itself, and that wins: the proxy
/// metadata for `ISTIO_META_<KEY>`, `discoveryAddress` for `XDS_ADDRESS`, `concurrency` for
/// `ZTUNNEL_WORKER_THREADS` (`environment(over:)`). The ports have no variable: they replace the
/// admin and metrics listeners' ports (`apply(to:)`).
public struct MeshProxyConfig: Equatable, Sendable {
    public var discoveryAddress: String?
    public var proxyAdminPort: UInt16?
    public var statsPort: UInt16?
    /// Worker threads; 0: one per CPU.
    public var concurrency: Int?
    /// Keys without the `ISTIO_META_` prefix they may be written with.
    public var proxyMetadata: [String: String] = [:]

    /// Relative, as ztunnel opens it (the container's working directory is /).
    public static let meshConfigPath = "./etc/istio/config/mesh"

    public init() {}

    /// The mesh config file's, if there is one, then `PROXY_CONFIG`'s over it.
    public static func load(environment: [String: String], meshConfigPath: String = meshConfigPath) throws(ConfigError) -> MeshProxyConfig {
        var pc = MeshProxyConfig()
        if let text = try? String(contentsOfFile: meshConfigPath, encoding: .utf8) {
            pc.merge(try parse(text, file: meshConfigPath, inMeshConfig: true))
        }
        if let text = environment["PROXY_CONFIG"], !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            pc.merge(try parse(text, file: "environment PROXY_CONFIG", inMeshConfig: false))
        }
        return pc
    }

    /// One ProxyConfig: the document itself, or a mesh config's `defaultConfig`.
    static func parse(_ text: String, file: String, inMeshConfig: Bool) throws(ConfigError) -> MeshProxyConfig {
        guard let root = try YAMLReader.documents(yaml: text, file: file).first, !root.isNull else { return MeshProxyConfig() }
        var doc = root
        if inMeshConfig {
            guard let d = try root.mapping().first(where: { $0.key == "defaultConfig" })?.value, !d.isNull else { return MeshProxyConfig() }
            doc = d
        }
        var pc = MeshProxyConfig()
        for (key, v) in try doc.mapping() {
            switch key {
            case "discoveryAddress": pc.discoveryAddress = try v.nonEmptyString()
            case "proxyAdminPort": pc.proxyAdminPort = try v.port()
            case "statsPort": pc.statsPort = try v.port()
            case "concurrency": pc.concurrency = try v.int(in: 0...256)
            case "proxyMetadata":
                if v.isNull { continue }
                for (k, value) in try v.mapping() {
                    pc.proxyMetadata[k.hasPrefix(prefix) ? String(k.dropFirst(prefix.count)) : k] = try value.string()
                }
            default: continue   // Envoy's fields (tracing, drain, holdApplicationUntilProxyStarts, …)
            }
        }
        return pc
    }

    static let prefix = "ISTIO_META_"

    /// `other`'s values over these (ztunnel's merge: set fields replace, metadata adds up).
    mutating func merge(_ other: MeshProxyConfig) {
        discoveryAddress = other.discoveryAddress ?? discoveryAddress
        proxyAdminPort = other.proxyAdminPort ?? proxyAdminPort
        statsPort = other.statsPort ?? statsPort
        concurrency = other.concurrency ?? concurrency
        proxyMetadata.merge(other.proxyMetadata) { $1 }
    }

    /// `env` with what this config stands in for, where `env` does not set it.
    public func environment(over env: [String: String]) -> [String: String] {
        var out = env
        func fill(_ name: String, _ value: String?) {
            guard let value, (out[name] ?? "").isEmpty else { return }
            out[name] = value
        }
        for (k, v) in proxyMetadata where !k.isEmpty { fill(Self.prefix + k, v) }
        fill("XDS_ADDRESS", discoveryAddress)
        fill("ZTUNNEL_WORKER_THREADS", concurrency.map(String.init))
        return out
    }

    /// The admin and metrics listeners on the ports named, on the addresses they have (loopback for
    /// admin, every address for metrics, as ztunnel, when the file turned them off).
    func apply(to listen: inout Settings.Listen) {
        if let p = proxyAdminPort { listen.admin = SocketAddress(ip: listen.admin?.ip ?? IPAddress("127.0.0.1")!, port: p) }
        if let p = statsPort { listen.metrics = SocketAddress(ip: listen.metrics?.ip ?? IPAddress("0.0.0.0")!, port: p) }
    }
}
