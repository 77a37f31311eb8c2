import Foundation
import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEControlPlane
import HBONEEventLoop
import HBONETLS

/// Every check `hbone proxy` makes before it serves, as one function, so `hbone validate` says
/// OK exactly when the proxy would start, and both fail with the same message: the config loads
/// (keys, values, policy files), the trust bundle and SVIDs load (keys match certificates, chains
/// end at the root, the `cacerts` set is coherent), the control-plane roots load, and every listen
/// address is distinct and can be bound now.
public enum StartupCheck {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// 2: the config does not load; 1: the proxy could not start with it.
        public let exitCode: Int32
    }

    public struct Report {
        public let config: ProxyConfig
        /// Start-up would go on, but these need attention (missing SVIDs, policies judged conservatively).
        public let warnings: [String]
        /// The proxy's first state as the check built it (trust bundle, SVIDs parsed or issued, TLS
        /// contexts), for `hbone proxy` to start from instead of building it twice. Nil with
        /// `configOnly`, and in istioCA mode (the proxy's state starts from its control plane's).
        public var state: ProxyState.Loaded? = nil
    }

    /// `configOnly`: the file alone (for a config meant for another machine: its certificate and
    /// root paths and listen addresses are that machine's).
    public static func run(configPath: String, bindListeners: Bool = true, configOnly: Bool = false) -> Result<Report, Failure> {
        let config: ProxyConfig
        do { config = try ProxyConfig.load(file: configPath) } catch {
            return .failure(Failure(description: "invalid config: \(error)", exitCode: 2))
        }
        var warnings = config.policyWarnings.map { "authorization policy: \($0)" } + config.configWarnings
        var prepared: ProxyState.Loaded?
        if configOnly {
            if let problem = listenProblem(config.settings, bind: false) { return .failure(Failure(description: problem, exitCode: 1)) }
            return .success(Report(config: config, warnings: warnings))
        }
        do {
            let istioCA = config.settings.certificates == .istioCA
            let loaded = try ProxyState.load(config: config, version: 1, issued: istioCA ? IssuedCertificates() : nil)
            if !istioCA {
                warnings += loaded.missing.map { "no usable certificate: \($0)" }
                prepared = loaded
            }
        } catch {
            return .failure(Failure(description: "\(error)", exitCode: 1))
        }
        let settings = config.settings
        if settings.controlPlane.xdsAddress != nil || settings.certificates == .istioCA {
            let cp = settings.controlPlane
            var roots: [(String, String)] = []
            if cp.xdsAddress != nil { roots.append(("xDS", cp.xdsRootCertificate ?? cp.caRootCertificate)) }
            if settings.certificates == .istioCA { roots.append(("CA", cp.caRootCertificate)) }
            for (what, file) in roots {
                do { _ = try TrustBundle(file: file) } catch {
                    return .failure(Failure(description: "\(what) root certificate \(file): \(error.reason)", exitCode: 1))
                }
            }
        }
        if let problem = listenProblem(settings, bind: bindListeners) {
            return .failure(Failure(description: problem, exitCode: 1))
        }
        return .success(Report(config: config, warnings: warnings, state: prepared))
    }

    /// Two listeners on one address, or one that cannot be bound (in use, not an address here).
    static func listenProblem(_ settings: Settings, bind: Bool) -> String? {
        let l = settings.listen
        var named: [(String, SocketAddress, Bool)] = []   // what, address, SO_REUSEPORT (as the proxy binds it)
        if let a = l.inbound { named.append(("listen.inbound", a, true)) }
        if let a = l.inboundPlaintext { named.append(("listen.inboundPlaintext", a, true)) }
        if let a = l.outboundCapture { named.append(("listen.outboundCapture", a, true)) }
        if let a = l.socks5 { named.append(("listen.socks5", a, true)) }
        if let a = l.admin { named.append(("listen.admin", a, false)) }
        if let a = l.metrics { named.append(("listen.metrics", a, false)) }
        if let a = l.readiness { named.append(("listen.readiness", a, false)) }
        var seen: [SocketAddress: String] = [:]
        for (what, address, _) in named where address.port != 0 {
            if let other = seen[address] { return "\(what) and \(other) both listen on \(address)" }
            seen[address] = what
        }
        guard bind else { return nil }
        for (what, address, reusePort) in named {
            do {
                let fd = try Socket.listen(on: address, freebind: false, reusePort: reusePort)
                Socket.abort(fd)
            } catch {
                return "cannot listen on \(address) (\(what)): \(error)"
            }
        }
        return nil
    }
}
