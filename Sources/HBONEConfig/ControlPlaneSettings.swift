import Foundation
import HBONECore

/// Where the proxy finds istiod (Delta xDS) and the Istio CA, and how it introduces itself, named as
/// ztunnel names them. Each value comes from the environment when set there (ztunnel's variables:
/// `XDS_ADDRESS`, `CA_ADDRESS`, `XDS_ROOT_CA`, `CA_ROOT_CA`, `AUTH_TOKEN`, `CLUSTER_ID`, `NODE_NAME`,
/// `POD_NAME`, `POD_NAMESPACE`, `INSTANCE_IP`, `SECRET_TTL`, `ALT_XDS_HOSTNAME`, `ALT_CA_HOSTNAME`, `XDS_HEADER_*`,
/// `CA_HEADER_*`), else from `hbone.xds` / `hbone.ca` in the file, else ztunnel's default.
public struct ControlPlaneSettings: Sendable, Equatable {
    /// An `https://host:port` control-plane address.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: UInt16

        public var description: String { "https://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// Why an address was refused.
        public struct Invalid: Error, Sendable, CustomStringConvertible {
            public let description: String
            init(_ description: String) { self.description = description }
        }

        /// `https://host:port` (the scheme may be left out; the port may not).
        public static func parse(_ text: String) -> Result<Endpoint, Invalid> {
            var rest = Substring(text)
            if rest.hasPrefix("https://") { rest = rest.dropFirst(8) } else if rest.contains("://") {
                return .failure(Invalid("only https:// is supported (istiod's 15012 is TLS)"))
            }
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            let host: Substring, portText: Substring
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                    return .failure(Invalid("expected https://[ipv6]:port"))
                }
                host = rest[rest.index(after: rest.startIndex)..<close]
                portText = rest[rest.index(close, offsetBy: 2)...]
            } else {
                guard let colon = rest.lastIndex(of: ":") else { return .failure(Invalid("missing :port")) }
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            }
            guard let port = UInt16(portText), port > 0 else { return .failure(Invalid("bad port \"\(portText.prefix(8))\"")) }
            let allowed = host.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" }
            guard !host.isEmpty, host.count <= 253, allowed, host.allSatisfy(\.isASCII) else {
                return .failure(Invalid("bad host \"\(host.prefix(40))\""))
            }
            return .success(Endpoint(host: String(host), port: port))
        }
    }

    /// ztunnel's default for both: istiod in istio-system.
    public static let istiod = Endpoint(host: "istiod.istio-system.svc", port: 15012)

    /// nil: workloads, services and policies come from the config file only.
    public var xdsAddress: Endpoint? = nil
    public var caAddress: Endpoint = ControlPlaneSettings.istiod
    /// Roots that sign istiod's serving certificate; nil: the CA's (`caRootCertificate`).
    public var xdsRootCertificate: String? = nil
    public var caRootCertificate = "./var/run/secrets/istio/root-cert.pem"
    /// The projected service-account token (audience `istio-ca`), read anew for every call.
    public var authToken = "./var/run/secrets/tokens/istio-token"
    public var clusterID = "Kubernetes"
    /// The Kubernetes node this proxy runs on (`NODE_NAME`); nil: `hbone.node`.
    public var nodeName: String? = nil
    public var podName = ""
    public var podNamespace = ""
    /// This proxy pod's IP; ztunnel sends 1.1.1.1 when it is unknown.
    public var instanceIP: String? = nil
    /// Lifetime asked of the CA for each SVID.
    public var secretTTL: Duration = .seconds(86_400)
    /// Another name istiod's certificate may carry (`ALT_XDS_HOSTNAME`).
    public var altXDSHostname: String? = nil
    /// The same for the CA (`ALT_CA_HOSTNAME`); nil: `altXDSHostname` (istiod serves both).
    public var altCAHostname: String? = nil
    public var xdsHeaders: [Header] = []
    public var caHeaders: [Header] = []
    /// Every `ISTIO_META_<KEY>` variable as `<KEY>` (ztunnel's proxy metadata: `ENABLE_HBONE`,
    /// `CLUSTER_ID`, `DNS_CAPTURE`, …), sent in the node metadata over what hbone fills in.
    public var proxyMetadata: [String: String] = [:]
    /// Every `ISTIO_METAJSON_<KEY>` variable as `<KEY>`: a JSON value (checked when read), sent
    /// in the node metadata as that value (an object, a list, a number), over the above.
    public var proxyMetadataJSON: [String: String] = [:]
    /// Resolution, TCP, TLS and the HTTP/2 SETTINGS exchange must finish within this (ztunnel: 5 s).
    public var connectTimeout: Duration = .seconds(5)
    /// HTTP/2 PING interval; never below 30 s (grpc-go servers drop clients that ping more often).
    public var keepaliveInterval: Duration = .seconds(30)
    /// An xDS stream that answers nothing this long after it opened is replaced.
    public var firstResponseTimeout: Duration = .seconds(30)
    /// The largest xDS message accepted (ztunnel: 200 MiB).
    public var maxMessageBytes = 200 * 1024 * 1024

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public init() {}

    /// ztunnel's node id: `ztunnel~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`.
    public var nodeID: String {
        "ztunnel~\(instanceIP ?? "1.1.1.1")~\(podName).\(podNamespace)~\(podNamespace).svc.cluster.local"
    }

    /// The node metadata istiod reads (string values only).
    public func nodeMetadata(node: String) -> [String: String] {
        let own = ["NAME": podName, "NAMESPACE": podNamespace, "INSTANCE_IPS": instanceIP ?? "1.1.1.1",
                   "NODE_NAME": nodeName ?? node, "CLUSTER_ID": clusterID]
        return own.merging(proxyMetadata) { $1 }
    }

    /// `hbone.xds` and `hbone.ca` (either may be absent), then the environment over them.
    static func parse(xds: YAMLReader?, ca: YAMLReader?, environment: [String: String], file: String,
                      path: (String) -> String) throws(ConfigError) -> ControlPlaneSettings {
        var s = ControlPlaneSettings()
        func endpoint(_ r: YAMLReader) throws(ConfigError) -> Endpoint {
            let text = try r.nonEmptyString()
            switch Endpoint.parse(text) {
            case let .success(e): return e
            case let .failure(reason): throw r.error("\"\(text.prefix(80))\": \(reason)")
            }
        }
        func headers(_ r: YAMLReader) throws(ConfigError) -> [Header] {
            var out: [Header] = []
            for (k, v) in try r.mapping() {
                guard Header.isValidName(k) else { throw v.error("\"\(k.prefix(40))\" is not a header name") }
                out.append(Header(name: k.lowercased(), value: try v.string()))
            }
            return out.sorted { $0.name < $1.name }
        }
        if let x = xds {
            let f = try x.fields(allowed: ["address", "rootCertificate", "altHostname", "headers", "authToken", "clusterId",
                                           "podName", "podNamespace", "instanceIP", "connectTimeout", "keepaliveInterval",
                                           "firstResponseTimeout", "maxMessageBytes"])
            if let v = f["address"] { s.xdsAddress = try endpoint(v) }
            if let v = f["rootCertificate"] { s.xdsRootCertificate = path(try v.nonEmptyString()) }
            if let v = f["altHostname"] { s.altXDSHostname = try v.nonEmptyString() }
            if let v = f["headers"] { s.xdsHeaders = try headers(v) }
            if let v = f["authToken"] { s.authToken = path(try v.nonEmptyString()) }
            if let v = f["clusterId"] { s.clusterID = try v.nonEmptyString() }
            if let v = f["podName"] { s.podName = try v.string() }
            if let v = f["podNamespace"] { s.podNamespace = try v.string() }
            if let v = f["instanceIP"] { s.instanceIP = try v.nonEmptyString() }
            if let v = f["connectTimeout"] {
                s.connectTimeout = try v.duration()
                if s.connectTimeout < .milliseconds(100) { throw v.error("must be at least 100ms") }
            }
            if let v = f["keepaliveInterval"] {
                s.keepaliveInterval = try v.duration()
                if s.keepaliveInterval < .seconds(30) { throw v.error("must be at least 30s (gRPC servers drop clients that ping more often)") }
            }
            if let v = f["firstResponseTimeout"] {
                s.firstResponseTimeout = try v.duration()
                if s.firstResponseTimeout < .milliseconds(100) { throw v.error("must be at least 100ms") }
            }
            if let v = f["maxMessageBytes"] { s.maxMessageBytes = try v.int(in: 1024...(1 << 30)) }
        }
        if let c = ca {
            let f = try c.fields(allowed: ["address", "rootCertificate", "altHostname", "headers", "secretTTL"])
            if let v = f["address"] { s.caAddress = try endpoint(v) }
            if let v = f["altHostname"] { s.altCAHostname = try v.nonEmptyString() }
            if let v = f["rootCertificate"] { s.caRootCertificate = path(try v.nonEmptyString()) }
            if let v = f["headers"] { s.caHeaders = try headers(v) }
            if let v = f["secretTTL"] {
                s.secretTTL = try v.duration()
                if s.secretTTL < .seconds(2) { throw v.error("must be at least 2s") }
            }
        }
        try s.applyEnvironment(environment, file: file)
        return s
    }

    /// The environment wins over the file, as in ztunnel.
    mutating func applyEnvironment(_ env: [String: String], file: String) throws(ConfigError) {
        func fail(_ name: String, _ reason: String) -> ConfigError {
            .environment(name, reason, file: file)
        }
        func endpoint(_ name: String) throws(ConfigError) -> Endpoint? {
            guard let text = env[name], !text.isEmpty else { return nil }
            switch Endpoint.parse(text) {
            case let .success(e): return e
            case let .failure(reason): throw fail(name, "\"\(text.prefix(80))\": \(reason)")
            }
        }
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let e = try endpoint("XDS_ADDRESS") { xdsAddress = e }
        if let e = try endpoint("CA_ADDRESS") { caAddress = e }
        if let v = value("XDS_ROOT_CA") { xdsRootCertificate = v }
        if let v = value("CA_ROOT_CA") { caRootCertificate = v }
        if let v = value("AUTH_TOKEN") { authToken = v }
        // Istio's chart sets ISTIO_META_CLUSTER_ID (its `multiCluster.clusterName`); ztunnel reads it
        // before CLUSTER_ID. istiod routes the CA's token review by it in a multi-cluster mesh.
        if let v = value("ISTIO_META_CLUSTER_ID") ?? value("CLUSTER_ID") { clusterID = v }
        if let v = value("NODE_NAME") { nodeName = v }
        for (name, v) in env where name.hasPrefix("ISTIO_META_") && name.count > "ISTIO_META_".count {
            proxyMetadata[String(name.dropFirst("ISTIO_META_".count))] = v
        }
        for (name, v) in env where name.hasPrefix("ISTIO_METAJSON_") && name.count > "ISTIO_METAJSON_".count {
            guard (try? JSONSerialization.jsonObject(with: Data(v.utf8), options: .fragmentsAllowed)) != nil else {
                throw fail(name, "\"\(v.prefix(60))\" is not JSON")
            }
            proxyMetadataJSON[String(name.dropFirst("ISTIO_METAJSON_".count))] = v
        }
        if let v = value("POD_NAME") { podName = v }
        if let v = value("POD_NAMESPACE") { podNamespace = v }
        if let v = value("INSTANCE_IP") {
            guard IPAddress(v) != nil else { throw fail("INSTANCE_IP", "\"\(v.prefix(60))\" is not an IP address") }
            instanceIP = v
        }
        if let d = try ProxyConfig.environmentDuration("SECRET_TTL", env, in: .seconds(2)...Duration.seconds(maxDurationSeconds), bounds: "of at least 2s", file: file) {
            secretTTL = d
        }
        if let v = value("ALT_XDS_HOSTNAME") { altXDSHostname = v }
        if let v = value("ALT_CA_HOSTNAME") { altCAHostname = v }
        xdsHeaders = try Self.merge(xdsHeaders, env, prefix: "XDS_HEADER_", fail: fail)
        caHeaders = try Self.merge(caHeaders, env, prefix: "CA_HEADER_", fail: fail)
    }

    /// `PREFIX<NAME>=value` adds or replaces header `<name>` (lower-cased).
    static func merge(_ headers: [Header], _ env: [String: String], prefix: String,
                      fail: (String, String) -> ConfigError) throws(ConfigError) -> [Header] {
        var byName: [String: String] = [:]
        for h in headers { byName[h.name] = h.value }
        for (key, value) in env where key.hasPrefix(prefix) && key.count > prefix.count {
            let name = String(key.dropFirst(prefix.count)).lowercased()
            guard Header.isValidName(name) else { throw fail(key, "\"\(name.prefix(40))\" is not a header name") }
            byName[name] = value
        }
        return byName.map { Header(name: $0.key, value: $0.value) }.sorted { $0.name < $1.name }
    }
}

extension ControlPlaneSettings.Header {
    /// An HTTP field name we may add: token characters, and none of the names gRPC or HTTP/2 own.
    static func isValidName(_ name: String) -> Bool {
        let lower = name.lowercased()
        let token = !lower.isEmpty && lower.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f || c == 0x2e
        }
        return token && !ReservedHeaderNames.contains(lower)
    }
}
