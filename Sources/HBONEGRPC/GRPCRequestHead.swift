import HBONECore

/// The request headers of a gRPC call to istiod (gRPC over HTTP/2 "Requests"): POST to
/// `/<package>.<Service>/<Method>`, `te: trailers` (grpcio resets a stream without it), the bearer
/// token and `clusterid` that istiod authenticates with, and operator-given extra headers
/// (`XDS_HEADER_*`, `CA_HEADER_*`, parsed with the settings: `ControlPlaneSettings`). Extra headers never
/// replace the protocol's own.
public struct GRPCRequestHead: Sendable {
    public var path: String
    public var authority: String
    /// The service-account token, read anew for every call; nil sends no `authorization`.
    public var token: String?
    public var clusterID: String
    public var extra: [(name: String, value: String)]

    public init(path: String, authority: String, token: String?, clusterID: String, extra: [(name: String, value: String)] = []) {
        self.path = path
        self.authority = authority
        self.token = token
        self.clusterID = clusterID
        self.extra = extra
    }

    /// Name/value pairs in the order to send them (pseudo-headers first, names lower-case).
    public var headers: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = [
            (":method", "POST"), (":scheme", "https"), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ]
        if let token, !token.isEmpty { out.append(("authorization", "Bearer \(token)")) }
        out.append(("clusterid", clusterID))
        for (name, value) in extra {
            let lower = name.lowercased()
            guard !ReservedHeaderNames.contains(lower) else { continue }
            out.append((lower, value))
        }
        return out
    }
}
