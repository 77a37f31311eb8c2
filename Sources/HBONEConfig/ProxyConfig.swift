import Foundation
import HBONECore
import HBONEIdentity
import HBONEAuthz
import HBONEDNS

/// The whole config file: ztunnel LocalConfig's `workloads`, `services`, `policies`, plus `hbone:`.
public struct ProxyConfig: Sendable {
    public var workloads: [Workload]
    public var services: [Service]
    public var policies: [Policy]
    public var settings: Settings
    /// Where it was loaded from (relative paths in it are resolved against its directory).
    public var file: String
    /// Notes about policies judged conservatively or skipped (logged at load).
    public var policyWarnings: [String] = []
    /// ztunnel LocalConfig keys that were accepted but whose meaning hbone does not act on (one
    /// note per key, with the first place it was used; logged at load and by `validate`).
    public var configWarnings: [String] = []

    /// Workloads on this node: its node name and its network (node names repeat across clusters;
    /// a workload on another network is only reachable through that network's gateway).
    public var localWorkloads: [Workload] { workloads.filter { $0.node == settings.node && $0.network == settings.network } }
    /// Workloads that name this node but are on another network: not served here (a `NETWORK`
    /// that differs from istiod's for this cluster shows up as these).
    public var nodeWorkloadsOnOtherNetworks: [Workload] { workloads.filter { $0.node == settings.node && $0.network != settings.network } }
    /// The local workloads this node holds an SVID for: all of them from files, and with the Istio
    /// CA those reached over HBONE (as ztunnel asks the CA only for those).
    public var certifiedLocalWorkloads: [Workload] {
        settings.certificates == .istioCA ? localWorkloads.filter { $0.protocol == .hbone } : localWorkloads
    }

    /// Says that workloads naming this node are on another network, so not served here; nil: none.
    public var otherNetworkNote: String? {
        let elsewhere = nodeWorkloadsOnOtherNetworks
        guard let first = elsewhere.first else { return nil }
        return "\(elsewhere.count) workload(s) on node \(settings.node) (\(first.namespace)/\(first.name) first) are on network \"\(first.network)\", "
            + "not this proxy's \"\(settings.network)\" (hbone.network, NETWORK): they are not served here"
    }

    /// Loads and checks a config file. Errors carry the file, line and path.
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> ProxyConfig {
        // The file's bytes and text live only inside this call: a large config's tree is built
        // from them, and they must be gone before its workloads are.
        func read() throws(ConfigError) -> String {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConfigError(file: file, line: nil, path: "", reason: "cannot read the file")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(file: file, line: nil, path: "", reason: "not UTF-8 text")
            }
            return text
        }
        return try parse(documents: try documents(yaml: try read(), file: file, environment: environment), file: file, environment: environment)
    }

    public static func parse(yaml raw: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> ProxyConfig {
        try parse(documents: try documents(yaml: raw, file: file, environment: environment), file: file, environment: environment)
    }

    /// The file's text with `${NAME}` expanded, read into YAML documents.
    static func documents(yaml raw: String, file: String, environment: [String: String]) throws(ConfigError) -> [YAMLReader] {
        try YAMLReader.documents(yaml: try expandEnvironment(raw, file: file, environment: environment), file: file)
    }

    static func parse(documents: [YAMLReader], file: String, environment: [String: String]) throws(ConfigError) -> ProxyConfig {
        guard let root = documents.first else {
            throw ConfigError(file: file, line: nil, path: "", reason: "empty config")
        }
        if documents.count > 1 {
            throw documents[1].error("a config is one YAML document; found another one here")
        }
        let top = try root.fields(allowed: ["workloads", "services", "policies", "hbone"])
        guard let hbone = top["hbone"] else {
            throw ConfigError(file: file, line: 1, path: "hbone", reason: "missing: the proxy's own settings (node, trustDomain, rootCertificates, certificates)")
        }
        let base = (file as NSString).deletingLastPathComponent
        // Istio's ProxyConfig (the mesh config's defaultConfig, then PROXY_CONFIG) stands in for the
        // variables it covers that are not set, as in ztunnel.
        let meshProxyConfig = try MeshProxyConfig.load(environment: environment)
        let environment = meshProxyConfig.environment(over: environment)
        var settings = try parseSettings(hbone, base: base, environment: environment)
        meshProxyConfig.apply(to: &settings.listen)
        var workloads: [Workload] = []
        for w in try top["workloads"].sequence() { workloads.append(try parseWorkload(w)) }
        var services: [Service] = []
        for s in try top["services"].sequence() { services.append(try parseService(s)) }
        var policies: [Policy] = []
        var definedAt: [String: Int?] = [:]
        for p in try top["policies"].sequence() {
            let policy = try PolicyParser.localConfig(p)
            // One policy per namespace and name, as Kubernetes and istiod hold them.
            if let first = definedAt[policy.key] { throw p.error("policy \(policy.key) is also defined at line \(first.map(String.init) ?? "?")") }
            definedAt[policy.key] = p.line
            policies.append(policy)
        }
        let localWarnings = policies.flatMap { p in p.warnings.map { "\(p.namespace)/\(p.name): \($0)" } }
        let istio = try IstioPolicyLoader.load(paths: settings.authorizationPolicies, rootNamespace: settings.rootNamespace)
        // Every policy the loader returns has its place in `definedAt`.
        for policy in istio.policies {
            guard let line = definedAt[policy.key], let there = istio.definedAt[policy.key] else { continue }
            throw ConfigError(file: there.file, line: there.line, path: "",
                              reason: "AuthorizationPolicy \(policy.key) is also defined in \(file):\(line.map(String.init) ?? "?") (policies)")
        }
        policies += istio.policies
        var config = ProxyConfig(workloads: workloads, services: services, policies: policies, settings: settings, file: file)
        config.policyWarnings = localWarnings + istio.warnings
        config.configWarnings = unusedKeyWarnings(workloads: top["workloads"], services: top["services"])
        if let note = config.otherNetworkNote { config.configWarnings.append(note) }
        try config.checkConsistency(top)
        return config
    }

    /// `${NAME}` becomes the environment variable NAME (a DaemonSet passes the node name this way);
    /// an unset variable is an error naming its line. `$${` stays a literal `${`.
    static func expandEnvironment(_ text: String, file: String, environment: [String: String]) throws(ConfigError) -> String {
        guard text.contains("${") else { return text }
        var out = ""
        var line = 1
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            let before = rest[..<start.lowerBound]
            line += before.filter { $0 == "\n" }.count
            if before.hasSuffix("$") {
                out += before.dropLast() + "${"
                rest = rest[start.upperBound...]
                continue
            }
            out += before
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                throw ConfigError(file: file, line: line, path: "", reason: "unterminated ${")
            }
            let name = String(rest[start.upperBound..<close])
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }), !name.first!.isNumber else {
                throw ConfigError(file: file, line: line, path: "", reason: "bad variable name ${\(name)} (use A-Z, 0-9, _)")
            }
            guard let value = environment[name] else {
                throw ConfigError(file: file, line: line, path: "", reason: "environment variable \(name) is not set")
            }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// Cross-field rules: unique uids, no IP claimed by two workloads of one network, service
    /// references exist.
    private func checkConsistency(_ top: [String: YAMLReader]) throws(ConfigError) {
        let workloadNodes = try top["workloads"].sequence()
        // Sized up front: growing them doubles a large config's peak for a moment.
        var uids = [String: Int](minimumCapacity: workloads.count)
        var ips = [NetworkAddress: Int](minimumCapacity: workloads.count)
        let serviceKeys = Set(services.map(\.key))
        for (i, w) in workloads.enumerated() {
            if let j = uids[w.uid] {
                throw workloadNodes[i].at("workloads[\(i)].uid").error("uid also used by workloads[\(j)]")
            }
            uids[w.uid] = i
            for (k, ip) in w.workloadIps.enumerated() {
                let key = NetworkAddress(network: w.network, ip: ip)
                if let j = ips[key], j != i {
                    throw workloadNodes[i].at("workloads[\(i)].workloadIps[\(k)]").error("\(ip) is also an IP of workloads[\(j)]")
                }
                ips[key] = i
            }
            for key in w.services.keys where !serviceKeys.contains(key) && !services.isEmpty {
                throw workloadNodes[i].at("workloads[\(i)].services").error("service \(key) is not defined under services")
            }
        }
    }

    /// Keys ztunnel acts on that hbone accepts without acting on them (yet): said once each.
    static let unusedMeaningfulKeys: [String: String] = [
        "subsetting": "services are not subset",
        "extensions": "extensions are not run",
    ]

    static func unusedKeyWarnings(workloads: YAMLReader?, services: YAMLReader?) -> [String] {
        var seen: Set<String> = []
        var out: [String] = []
        for (section, reader) in [("workloads", workloads), ("services", services)] {
            // Straight over the nodes: this runs once per workload of configs with 100,000 of them.
            guard let reader, reader.node.kind == .sequence else { continue }
            let tree = reader.tree
            for (i, item) in tree.children(of: reader.index).enumerated() where tree.node(item).kind == .mapping {
                let keys = tree.children(of: item).enumerated().filter { $0.offset % 2 == 0 }.map { tree.node($0.element) }
                for key in keys.filter({ $0.kind == .scalar }).map(\.string).sorted() {
                    guard let why = unusedMeaningfulKeys[key], seen.insert(key).inserted else { continue }
                    out.append("\(section)[\(i)].\(key): accepted but not used (\(why))")
                }
            }
        }
        return out
    }

    static let ignoredWorkloadKeys: Set<String> = [
        "authorizationPolicies",
        "nativeTunnel", "networkMode", "tunnelProtocol",
        "trustDomainAliases", "extensions",
    ]

    /// Built once: a set per workload was a tenth of loading 100,000 of them.
    static let workloadKeys: Set<String> = ignoredWorkloadKeys.union([
        "uid", "name", "namespace", "serviceAccount", "trustDomain", "workloadIps", "workloadIp", "protocol", "node", "services",
        "labels", "clusterId", "workloadName", "canonicalName", "canonicalRevision", "waypoint", "network", "networkGateway",
        "status", "locality", "capacity", "applicationTunnel", "workloadType", "hostname",
    ])

    /// istiod's WorkloadType values, as ztunnel names them (`k8s.<type>.name` in baggage).
    public static let workloadTypes: Set<String> = ["deployment", "cronjob", "pod", "job"]

    static func parseWorkload(_ r: YAMLReader) throws(ConfigError) -> Workload {
        let f = try r.fields(allowed: workloadKeys)
        func required(_ key: String) throws(ConfigError) -> YAMLReader {
            guard let v = f[key] else { throw r.error("missing \(key)") }
            return v
        }
        let name = try required("name").nonEmptyString()
        let namespace = try required("namespace").nonEmptyString()
        let serviceAccount = try f["serviceAccount"]?.nonEmptyString() ?? "default"
        let trustDomain = try f["trustDomain"]?.nonEmptyString() ?? "cluster.local"
        let identity: SPIFFEID
        do {
            identity = try SPIFFEID(trustDomain: trustDomain, namespace: namespace, serviceAccount: serviceAccount)
        } catch {
            throw r.error("identity spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount) is invalid: \(error)")
        }
        var ips: [IPAddress] = []
        if let list = f["workloadIps"] { for ip in try list.sequence() { ips.append(try ip.ip()) } }
        if let single = f["workloadIp"] { ips.append(try single.ip()) }
        let networkGateway = try f["networkGateway"].map(parseGateway)
        var hostname = ""
        if let h = f["hostname"] {
            hostname = try h.string()
            guard Workload.isResolvableHostname(hostname) else { throw h.error("\"\(hostname.prefix(80))\" is not a DNS name to resolve") }
        }
        // istiod's stand-in for a service's endpoints behind another network's gateway has no
        // address: it is reached through the gateway only. A ServiceEntry's DNS endpoint has only
        // its hostname, looked up when a connection picks it.
        if ips.isEmpty && networkGateway == nil && hostname.isEmpty {
            throw r.error("missing workloadIps (only a workload with a hostname or behind a networkGateway may have none)")
        }
        var proto = InboundProtocol.tcp
        if let p = f["protocol"] {
            let s = try p.string()
            guard let v = InboundProtocol(rawValue: s.uppercased()) else { throw p.error("\"\(s)\" must be HBONE or TCP") }
            proto = v
        }
        var services: [String: [UInt16: UInt16]] = [:]
        if let s = f["services"] {
            for (key, ports) in try s.mapping() {
                guard key.contains("/") else { throw ports.error("service key must be <namespace>/<hostname>") }
                var map: [UInt16: UInt16] = [:]
                for (portKey, target) in try ports.mapping() {
                    guard let port = UInt16(portKey), port > 0 else { throw target.error("\"\(portKey)\" is not a port") }
                    // 0: the same port (as in services[].ports).
                    map[port] = UInt16(try target.int(in: 0...65535))
                }
                services[key] = map
            }
        }
        var labels: [String: String] = [:]
        if let l = f["labels"] { for (k, v) in try l.mapping() { labels[k] = try v.string() } }
        let workloadName = try f["workloadName"]?.string() ?? name
        var workloadType = "deployment"
        if let t = f["workloadType"] {
            let text = try t.string().lowercased()
            guard Self.workloadTypes.contains(text) else { throw t.error("\"\(text.prefix(40))\" must be deployment, cronjob, pod or job") }
            workloadType = text
        }
        return Workload(
            uid: try f["uid"]?.nonEmptyString() ?? "\(namespace)/\(name)",
            name: name, namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain,
            workloadIps: ips, protocol: proto, node: try f["node"]?.string() ?? "",
            clusterId: try f["clusterId"]?.string() ?? "Kubernetes",
            workloadName: workloadName,
            canonicalName: try f["canonicalName"]?.string() ?? Workload.canonicalName(labels: labels, workloadName: workloadName),
            canonicalRevision: try f["canonicalRevision"]?.string() ?? Workload.canonicalRevision(labels: labels),
            labels: labels, services: services, identity: identity, network: try f["network"]?.string() ?? "",
            networkGateway: networkGateway, waypoint: try f["waypoint"].map(parseGateway),
            status: try f["status"].map { v throws(ConfigError) in try v.named(HealthStatus.self) } ?? .healthy,
            locality: try f["locality"].map(parseLocality) ?? Locality(),
            capacity: try f["capacity"].map { v throws(ConfigError) in UInt32(try v.int(in: 0...Int(UInt32.max))) } ?? 1,
            applicationTunnel: try f["applicationTunnel"].map(parseApplicationTunnel), workloadType: workloadType, hostname: hostname)
    }

    /// ztunnel's `{protocol: PROXY, port: 15088}` (protocol NONE when left out, port optional).
    static func parseApplicationTunnel(_ r: YAMLReader) throws(ConfigError) -> ApplicationTunnel {
        let f = try r.fields(allowed: ["protocol", "port"])
        return ApplicationTunnel(protocol: try f["protocol"].map { v throws(ConfigError) in try v.named(ApplicationTunnel.Kind.self) } ?? .none,
                                 port: try f["port"]?.port())
    }

    static func parseLocality(_ r: YAMLReader) throws(ConfigError) -> Locality {
        let f = try r.fields(allowed: ["region", "zone", "subzone"])
        return Locality(region: try f["region"]?.string() ?? "", zone: try f["zone"]?.string() ?? "", subzone: try f["subzone"]?.string() ?? "")
    }

    /// ztunnel's `{routingPreferences: [Network, Region, …], mode: Failover, healthPolicy: AllowAll}`.
    static func parseLoadBalancer(_ r: YAMLReader) throws(ConfigError) -> LoadBalancer {
        let f = try r.fields(allowed: ["routingPreferences", "mode", "healthPolicy"])
        var scopes: [LoadBalancer.Scope] = []
        for item in try f["routingPreferences"].sequence() { scopes.append(try item.named(LoadBalancer.Scope.self)) }
        return LoadBalancer(routingPreferences: scopes, mode: try f["mode"].map { v throws(ConfigError) in try v.named(LoadBalancer.Mode.self) } ?? .standard,
                            healthPolicy: try f["healthPolicy"].map { v throws(ConfigError) in try v.named(LoadBalancer.HealthPolicy.self) } ?? .onlyHealthy)
    }

    /// ztunnel's GatewayAddress: `{destination: "network/ip" | "namespace/hostname", hboneMtlsPort: 15008}`.
    static func parseGateway(_ r: YAMLReader) throws(ConfigError) -> GatewayAddress {
        let f = try r.fields(allowed: ["destination", "hboneMtlsPort"])
        guard let d = f["destination"] else { throw r.error("missing destination") }
        let text = try d.string()
        let port = try f["hboneMtlsPort"].map { p throws(ConfigError) in UInt16(try p.int(in: 1...65535)) } ?? 15008
        guard let g = GatewayAddress(destinationText: text, hboneMtlsPort: port) else {
            throw d.error("\"\(text.prefix(80))\" is neither network/ip nor namespace/hostname")
        }
        return g
    }

    static func parseService(_ r: YAMLReader) throws(ConfigError) -> Service {
        let f = try r.fields(allowed: ["name", "namespace", "hostname", "vips", "ports", "subjectAltNames",
                                       "endpoints", "subsetting", "waypoint", "loadBalancer", "ipFamilies", "canonical",
                                       "weightedWaypoints", "visibility", "cidrVips"])
        guard let name = try f["name"]?.nonEmptyString() else { throw r.error("missing name") }
        guard let namespace = try f["namespace"]?.nonEmptyString() else { throw r.error("missing namespace") }
        let hostname = try f["hostname"]?.nonEmptyString() ?? "\(name).\(namespace).svc.cluster.local"
        var addresses: [NetworkAddress] = []
        for v in try f["vips"].sequence() {
            // ztunnel writes VIPs as "<network>/<ip>"; a bare IP is accepted too.
            let s = try v.string()
            let parts = s.split(separator: "/", omittingEmptySubsequences: false)
            let ipText = parts.last.map(String.init) ?? s
            guard parts.count <= 2, let ip = IPAddress(ipText) else { throw v.error("\"\(s)\" is not [network/]ip") }
            addresses.append(NetworkAddress(network: parts.count == 2 ? String(parts[0]) : "", ip: ip))
        }
        var ports: [UInt16: UInt16] = [:]
        if let p = f["ports"] {
            for (k, target) in try p.mapping() {
                guard let port = UInt16(k), port > 0 else { throw target.error("\"\(k)\" is not a port") }
                ports[port] = UInt16(try target.int(in: 0...65535))
            }
        }
        var sans: [SPIFFEID] = []
        for s in try f["subjectAltNames"].sequence() {
            let text = try s.string()
            do { sans.append(try SPIFFEID(parsing: text)) } catch { throw s.error("\"\(text)\": \(error)") }
        }
        var service = Service(name: name, namespace: namespace, hostname: hostname, addresses: addresses, ports: ports, subjectAltNames: sans)
        for v in try f["cidrVips"].sequence() {
            // "[network/]ip/length", as ztunnel writes a NetworkCidr.
            let s = try v.string()
            let parts = s.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3, let cidr = CIDR(parts.suffix(2).joined(separator: "/")) else {
                throw v.error("\"\(s.prefix(60))\" is not [network/]ip/length")
            }
            service.cidrVIPs.append(NetworkCIDR(network: parts.count == 3 ? String(parts[0]) : "", cidr: cidr))
        }
        service.canonical = try f["canonical"]?.bool() ?? false
        service.waypoint = try f["waypoint"].map(parseGateway)
        service.loadBalancer = try f["loadBalancer"].map(parseLoadBalancer)
        service.visibility = try f["visibility"].map { v throws(ConfigError) in try v.named(Service.Visibility.self) } ?? .public
        service.ipFamilies = try f["ipFamilies"].map { v throws(ConfigError) in try v.named(Service.IPFamilies.self) }
        for item in try f["weightedWaypoints"].sequence() {
            let w = try item.fields(allowed: ["destination", "weight"])
            guard let destination = w["destination"] else { throw item.error("missing destination") }
            service.weightedWaypoints.append(WeightedWaypoint(destination: try parseGateway(destination),
                                                              weight: UInt32(try w["weight"]?.int(in: 0...Int(UInt32.max)) ?? 0)))
        }
        return service
    }

    static func parseSettings(_ r: YAMLReader, base: String, environment: [String: String] = [:]) throws(ConfigError) -> Settings {
        let f = try r.fields(allowed: ["node", "trustDomain", "trustDomainAliases", "rootCertificates", "certificates",
                                       "listen", "workers", "rootNamespace", "authorizationPolicies", "network",
                                       "timeouts", "pool", "h2", "outboundMark", "drainTimeout", "xds", "ca", "inpod", "dns", "crlPath",
                                       "tcpKeepalive", "ipv6Enabled", "responseBaggage", "maxBaggageSeries"])
        func path(_ s: String) -> String { s.hasPrefix("/") ? s : (base as NSString).appendingPathComponent(s) }
        guard let node = try f["node"]?.nonEmptyString() else { throw r.error("missing node") }
        let trustDomain = try f["trustDomain"]?.nonEmptyString() ?? "cluster.local"
        do { _ = try SPIFFEID(trustDomain: trustDomain, namespace: "x", serviceAccount: "x") } catch {
            throw f["trustDomain"]!.error("\(error)")
        }
        guard let certs = f["certificates"] else { throw r.error("missing certificates") }
        let c = try certs.fields(allowed: ["directory", "ca", "ttl", "rotationGracePeriodRatio", "istioCA"])
        let source: Settings.CertificateSource
        let istioCA = try c["istioCA"]?.bool() ?? false
        switch (c["directory"], c["ca"]) {
        case (nil, nil) where istioCA:
            if let extra = c["ttl"] ?? c["rotationGracePeriodRatio"] { throw extra.error("only with certificates.ca (the Istio CA's lifetime is hbone.ca.secretTTL)") }
            source = .istioCA
        case _ where istioCA:
            throw certs.error("set one of directory, ca or istioCA")
        case let (d?, nil):
            if let extra = c["ttl"] ?? c["rotationGracePeriodRatio"] { throw extra.error("only with certificates.ca") }
            source = .directory(path(try d.nonEmptyString()))
        case let (nil, ca?):
            var issuance = Settings.CAIssuance(directory: path(try ca.nonEmptyString()))
            if let t = c["ttl"] {
                issuance.ttl = try t.duration()
                if issuance.ttl < .seconds(2) { throw t.error("must be at least 2s") }
            }
            if let g = c["rotationGracePeriodRatio"] { issuance.rotationGracePeriodRatio = try g.double(in: 0.01...0.99) }
            source = .ca(issuance)
        case (_?, _?):
            throw certs.error("set either directory or ca, not both")
        case (nil, nil):
            throw certs.error("missing directory (SVID files), ca (a cacerts directory to issue from) or istioCA: true (the Istio CA)")
        }
        let roots: String
        if let r2 = f["rootCertificates"] {
            roots = path(try r2.nonEmptyString())
        } else if case let .ca(issuance) = source {
            roots = issuance.directory + "/" + Settings.CAIssuance.files(in: issuance.directory).root
        } else if source == .istioCA {
            roots = ""
        } else {
            throw r.error("missing rootCertificates")
        }
        var s = Settings(node: node, trustDomain: trustDomain, rootCertificates: roots, certificates: source)
        // ztunnel's CRL_PATH wins over the file, as its other variables do.
        if let v = f["crlPath"] { s.crlPath = path(try v.nonEmptyString()) }
        if let v = environment["CRL_PATH"], !v.isEmpty { s.crlPath = v }
        for a in try f["trustDomainAliases"].sequence() {
            let td = try a.nonEmptyString()
            do { _ = try SPIFFEID(trustDomain: td, namespace: "x", serviceAccount: "x") } catch { throw a.error("\(error)") }
            s.trustDomainAliases.append(td)
        }
        if let l = f["listen"] {
            let lf = try l.fields(allowed: ["inboundPort", "inbound", "inboundPlaintext", "outboundCapture", "socks5", "admin", "metrics", "readiness"])
            func addr(_ key: String) throws(ConfigError) -> SocketAddress?? {
                guard let v = lf[key] else { return .none }
                if v.isNull { return .some(nil) }
                return .some(try v.socketAddress())
            }
            if let p = lf["inboundPort"] { s.listen.inboundPort = try p.port() }
            if case let .some(v) = try addr("inbound") { s.listen.inbound = v }
            if case let .some(v) = try addr("inboundPlaintext") { s.listen.inboundPlaintext = v }
            if case let .some(v) = try addr("outboundCapture") { s.listen.outboundCapture = v }
            if case let .some(v) = try addr("socks5") {
                if let v, !v.ip.isLoopback { throw lf["socks5"]!.error("SOCKS5 must listen on a loopback address") }
                s.listen.socks5 = v
            }
            if case let .some(v) = try addr("admin") { s.listen.admin = v }
            if case let .some(v) = try addr("metrics") { s.listen.metrics = v }
            if case let .some(v) = try addr("readiness") { s.listen.readiness = v }
        }
        if let w = f["workers"] { s.workers = try w.int(in: 1...256) }
        if let v = f["rootNamespace"] { s.rootNamespace = try v.nonEmptyString() }
        if let v = f["network"] { s.network = try v.string() }
        // ztunnel's NETWORK, set from the mesh's values for this cluster.
        if let n = environment["NETWORK"], !n.isEmpty { s.network = n }
        for p in try f["authorizationPolicies"].sequence() { s.authorizationPolicies.append(path(try p.nonEmptyString())) }
        if let m = f["outboundMark"] { s.outboundMark = Int32(try m.int(in: 1...Int(Int32.max))) }
        s.controlPlane = try ControlPlaneSettings.parse(xds: f["xds"], ca: f["ca"], environment: environment, file: r.file, path: path)
        // NODE_NAME names the Kubernetes node: workloads istiod places on it are the local ones.
        if let n = s.controlPlane.nodeName { s.node = n }
        // In-pod mode: hbone.inpod.uds or ztunnel's INPOD_UDS (the environment wins); PACKET_MARK.
        var localhostAppTunnel: Bool?
        if let i = f["inpod"] {
            let fi = try i.fields(allowed: ["uds", "localhostAppTunnel"])
            if let u = fi["uds"] { s.inPod = Settings.InPod(uds: path(try u.nonEmptyString())) }
            localhostAppTunnel = try fi["localhostAppTunnel"]?.bool()
        }
        if let uds = environment["INPOD_UDS"], !uds.isEmpty { s.inPod = Settings.InPod(uds: uds) }
        if let v = try environmentBool("LOCALHOST_APP_TUNNEL", environment, file: r.file) { localhostAppTunnel = v }
        if let v = localhostAppTunnel { s.inPod?.localhostAppTunnel = v }
        s.dns = try parseDNS(f["dns"], file: r.file, environment: environment)
        s.dns.resolvConf = path(s.dns.resolvConf)
        // Upstreams not named are this host's resolvers, read only when the DNS proxy runs (not on
        // every parse of a config that does not use it).
        if s.dnsEnabled, s.dns.upstreams.isEmpty, let text = try? String(contentsOfFile: s.dns.resolvConf, encoding: .utf8) {
            s.dns.upstreams = ResolvConf(parsing: text).nameservers
        }
        if let mark = environment["PACKET_MARK"], !mark.isEmpty {
            guard let m = Int32(mark), m > 0 else {
                throw ConfigError.environment("PACKET_MARK", "\"\(mark.prefix(20))\" is not a positive integer", file: r.file)
            }
            s.outboundMark = m
        }
        func envFail(_ name: String, _ reason: String) -> ConfigError { .environment(name, reason, file: r.file) }
        // ztunnel's rule: drain for the pod's grace period less 5 s (less 1 s for a period of 10 s
        // or less; at least 1 s), unless the file says otherwise.
        if let g = environment["TERMINATION_GRACE_PERIOD_SECONDS"], !g.isEmpty {
            guard let seconds = Int(g), seconds >= 0 else { throw envFail("TERMINATION_GRACE_PERIOD_SECONDS", "\"\(g.prefix(20))\" is not a number of seconds") }
            s.timeouts.drain = .seconds(max(1, seconds > 10 ? seconds - 5 : seconds - 1))
        }
        if let d = f["drainTimeout"] { s.timeouts.drain = try d.duration() }
        if let t = f["timeouts"] {
            let tf = try t.fields(allowed: ["handshake", "connect", "idle", "keepaliveInterval", "keepaliveTimeout", "drain"])
            if let v = tf["handshake"] { s.timeouts.handshake = try v.duration() }
            if let v = tf["connect"] { s.timeouts.connect = try v.duration() }
            if let v = tf["idle"] { s.timeouts.idle = v.isNull ? nil : try v.duration() }
            if let v = tf["keepaliveInterval"] { s.timeouts.keepaliveInterval = try v.duration() }
            if let v = tf["keepaliveTimeout"] { s.timeouts.keepaliveTimeout = try v.duration() }
            if let v = tf["drain"] { s.timeouts.drain = try v.duration() }
        }
        if let p = f["pool"] {
            let pf = try p.fields(allowed: ["maxStreamsPerConnection", "idleTimeout"])
            if let v = pf["maxStreamsPerConnection"] { s.pool.maxStreamsPerConnection = try v.int(in: 1...10_000) }
            if let v = pf["idleTimeout"] { s.pool.idleTimeout = try v.duration() }
        }
        // ztunnel's explicit settings of these win over the file, as its other variables do.
        if let d = try Self.environmentDuration("CONNECTION_TERMINATION_DEADLINE", environment, file: r.file) { s.timeouts.drain = d }
        if let d = try Self.environmentDuration("POOL_UNUSED_RELEASE_TIMEOUT", environment, file: r.file) { s.pool.idleTimeout = d }
        if let v = environment["POOL_MAX_STREAMS_PER_CONNECTION"], !v.isEmpty {
            guard let n = Int(v), (1...10_000).contains(n) else { throw envFail("POOL_MAX_STREAMS_PER_CONNECTION", "\"\(v.prefix(20))\" is not a number in 1...10000") }
            s.pool.maxStreamsPerConnection = n
        }
        s.tcpKeepalive = try parseKeepalive(f["tcpKeepalive"], environment: environment, file: r.file)
        if let v = f["ipv6Enabled"] { s.ipv6Enabled = try v.bool() }
        if let v = try environmentBool("IPV6_ENABLED", environment, file: r.file) { s.ipv6Enabled = v }
        if let v = f["responseBaggage"] { s.responseBaggage = try v.bool() }
        if let v = try environmentBool("ENABLE_RESPONSE_BAGGAGE", environment, file: r.file) { s.responseBaggage = v }
        if let v = f["maxBaggageSeries"] { s.maxBaggageSeries = try v.int(in: 0...1_000_000) }
        // A CPU limit that is not a quantity stops ztunnel at start-up; so it does here.
        for name in CPUQuantity.limitVariables + ["ZTUNNEL_RESOURCE_CPU_REQUEST"] {
            if let v = environment[name], !v.isEmpty, CPUQuantity.cores(v) == nil {
                throw envFail(name, "\"\(v.prefix(20))\" is not a positive CPU quantity (like 2, 1.5 or 500m)")
            }
        }
        if let v = environment["ZTUNNEL_WORKER_THREADS"], !v.isEmpty {
            // A percentage (and 0, all of them) counts the CPUs as ztunnel does: the CPU limit
            // given, else every CPU of the machine.
            let cpus = CPUQuantity.limit(environment) ?? ProcessInfo.processInfo.activeProcessorCount
            guard let n = Self.workerThreads(v, cpus: cpus) else {
                throw envFail("ZTUNNEL_WORKER_THREADS", "\"\(v.prefix(20))\" is neither a number of threads (0: one per CPU, up to 256) nor a percentage of the CPUs (like 50%)")
            }
            s.workers = n
        }
        if let h = f["h2"] {
            let hf = try h.fields(allowed: ["streamWindow", "connectionWindow", "maxConcurrentStreams", "maxPrematureResetsPerSecond"])
            if let v = hf["maxPrematureResetsPerSecond"] { s.h2.maxPrematureResetsPerSecond = try v.int(in: 1...1_000_000) }
            if let v = hf["streamWindow"] { s.h2.streamWindow = try v.int(in: 65_535...(1 << 30)) }
            if let v = hf["connectionWindow"] { s.h2.connectionWindow = try v.int(in: 65_535...(1 << 30)) }
            if let v = hf["maxConcurrentStreams"] { s.h2.maxConcurrentStreams = try v.int(in: 1...100_000) }
            if s.h2.connectionWindow < s.h2.streamWindow {
                throw h.error("connectionWindow must be at least streamWindow (4× avoids cross-stream stalls)")
            }
        }
        return s
    }

    /// `hbone.dns`, then ztunnel's variables over it: `ISTIO_META_DNS_CAPTURE`, `ISTIO_META_DNS_PROXY_ADDR`,
    /// `CLUSTER_DOMAIN`.
    static func parseDNS(_ r: YAMLReader?, file: String, environment: [String: String]) throws(ConfigError) -> Settings.DNS {
        var d = Settings.DNS()
        /// A cluster domain in lower case, or nil when the text is not a domain name.
        func domain(_ text: String) -> String? { DNSName(text)?.key == text.lowercased() ? text.lowercased() : nil }
        if let r {
            let f = try r.fields(allowed: ["enabled", "address", "clusterDomain", "upstreams", "upstreamTimeout", "resolvConf",
                                           "preferredServiceNamespace"])
            if let v = f["enabled"] { d.enabled = try v.bool() }
            if let v = f["address"] { d.address = try v.socketAddress() }
            if let v = f["clusterDomain"] {
                let text = try v.nonEmptyString()
                guard let valid = domain(text) else { throw v.error("\"\(text.prefix(60))\" is not a domain name") }
                d.clusterDomain = valid
            }
            for u in try f["upstreams"].sequence() {
                let text = try u.nonEmptyString()
                guard let a = SocketAddress(text) ?? IPAddress(text).map({ SocketAddress(ip: $0, port: 53) }) else {
                    throw u.error("\"\(text.prefix(60))\" is not an address (ip or ip:port)")
                }
                d.upstreams.append(a)
            }
            if let v = f["upstreamTimeout"] {
                d.upstreamTimeout = try v.duration()
                if d.upstreamTimeout < .milliseconds(10) || d.upstreamTimeout > .seconds(30) { throw v.error("must be between 10ms and 30s") }
            }
            if let v = f["resolvConf"] { d.resolvConf = try v.nonEmptyString() }
            if let v = f["preferredServiceNamespace"] { d.preferredServiceNamespace = try v.nonEmptyString() }
        }
        func fail(_ name: String, _ reason: String) -> ConfigError { .environment(name, reason, file: file) }
        if let v = try environmentBool("ISTIO_META_DNS_CAPTURE", environment, file: file) { d.enabled = v }
        if let v = environment["ISTIO_META_DNS_PROXY_ADDR"], !v.isEmpty {
            // ztunnel takes `localhost:PORT` too (127.0.0.1, and ::1 where the pod has IPv6).
            let text = v.lowercased().hasPrefix("localhost:") ? "127.0.0.1:" + v.dropFirst("localhost:".count) : v
            guard let a = SocketAddress(text) else { throw fail("ISTIO_META_DNS_PROXY_ADDR", "\"\(v.prefix(60))\" is not an address (ip:port)") }
            d.address = a
        }
        if let v = environment["CLUSTER_DOMAIN"], !v.isEmpty {
            guard let valid = domain(v) else { throw fail("CLUSTER_DOMAIN", "\"\(v.prefix(60))\" is not a domain name") }
            d.clusterDomain = valid
        }
        if let v = environment["PREFERED_SERVICE_NAMESPACE"], !v.isEmpty { d.preferredServiceNamespace = v }
        return d
    }

    /// `hbone.tcpKeepalive`, then ztunnel's variables over it: KEEPALIVE_ENABLED, KEEPALIVE_TIME,
    /// KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, USER_TIMEOUT_ENABLED. The kernel counts in whole
    /// seconds: at least 1 s each.
    static func parseKeepalive(_ r: YAMLReader?, environment: [String: String], file: String) throws(ConfigError) -> TCPKeepalive {
        var k = TCPKeepalive()
        let seconds = Duration.seconds(1)...Duration.seconds(32_767)
        if let r {
            let f = try r.fields(allowed: ["enabled", "time", "interval", "probes", "userTimeout"])
            if let v = f["enabled"] { k.enabled = try v.bool() }
            for (key, path) in [("time", \TCPKeepalive.time), ("interval", \TCPKeepalive.interval)] {
                guard let v = f[key] else { continue }
                let d = try v.duration()
                guard seconds.contains(d) else { throw v.error("must be between 1s and 32767s") }
                k[keyPath: path] = d
            }
            if let v = f["probes"] { k.probes = try v.int(in: 1...127) }
            if let v = f["userTimeout"] { k.userTimeout = try v.bool() }
        }
        func fail(_ name: String, _ reason: String) -> ConfigError { .environment(name, reason, file: file) }
        if let v = try environmentBool("KEEPALIVE_ENABLED", environment, file: file) { k.enabled = v }
        if let v = try environmentBool("USER_TIMEOUT_ENABLED", environment, file: file) { k.userTimeout = v }
        for (name, path) in [("KEEPALIVE_TIME", \TCPKeepalive.time), ("KEEPALIVE_INTERVAL", \TCPKeepalive.interval)] {
            if let d = try environmentDuration(name, environment, in: seconds, bounds: "between 1s and 32767s", file: file) { k[keyPath: path] = d }
        }
        if let v = environment["KEEPALIVE_RETRIES"], !v.isEmpty {
            guard let n = Int(v), (1...127).contains(n) else { throw fail("KEEPALIVE_RETRIES", "\"\(v.prefix(20))\" is not a number in 1...127") }
            k.probes = n
        }
        return k
    }

    /// ztunnel's ZTUNNEL_WORKER_THREADS: a number (0: one per CPU), or a percentage of the CPUs
    /// (rounded up, at least 1).
    static func workerThreads(_ text: String, cpus: Int) -> Int? {
        if text.hasSuffix("%") {
            guard let p = Double(text.dropLast()), p > 0, p <= 100 else { return nil }
            return max(1, Int((Double(cpus) * p / 100).rounded(.up)))
        }
        guard let n = Int(text), (0...256).contains(n) else { return nil }
        return n == 0 ? max(1, min(cpus, 256)) : n
    }

    /// A duration-valued environment variable of ztunnel's (500ms, 10s, 5m, 24h); nil when unset or
    /// empty. `range`, when given, is what it may be, in the words of `bounds` ("at least 2s").
    static func environmentDuration(_ name: String, _ environment: [String: String], in range: ClosedRange<Duration>? = nil,
                                    bounds: String = "", file: String) throws(ConfigError) -> Duration? {
        guard let v = environment[name], !v.isEmpty else { return nil }
        guard let d = parseDuration(v) else { throw ConfigError.environment(name, "\"\(v.prefix(40))\" is not a duration (like 500ms, 10s, 5m)", file: file) }
        if let range, !range.contains(d) { throw ConfigError.environment(name, "\"\(v.prefix(40))\" is not a duration \(bounds)", file: file) }
        return d
    }

    /// A true/false environment variable of ztunnel's; nil when unset or empty.
    static func environmentBool(_ name: String, _ environment: [String: String], file: String) throws(ConfigError) -> Bool? {
        guard let v = environment[name], !v.isEmpty else { return nil }
        switch v.lowercased() {
        case "true": return true
        case "false": return false
        default: throw ConfigError.environment(name, "\"\(v.prefix(20))\" is not true or false", file: file)
        }
    }
}
