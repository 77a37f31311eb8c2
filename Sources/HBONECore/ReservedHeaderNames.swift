/// Request header names a configured extra header (`hbone.xds.headers`, ISTIO_META / XDS_HEADER_*
/// style settings) may never set, because gRPC, HTTP/2 or the proxy itself owns them. One list for
/// the config check that refuses them and for the gRPC client that would drop them.
public enum ReservedHeaderNames {
    public static let all: Set<String> = [
        "te", "content-type", "authorization", "clusterid", "host", "connection", "grpc-timeout",
        "grpc-encoding", "grpc-accept-encoding", "transfer-encoding", "upgrade",
    ]

    /// Lower-case `name` is reserved: a pseudo-header or one of `all`.
    public static func contains(_ lowercased: String) -> Bool {
        lowercased.hasPrefix(":") || all.contains(lowercased)
    }
}
