import Foundation
import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEAdmin
#if canImport(Glibc)
import Glibc
#endif

/// `hbone proxy` as a library: loads the config, starts the workers and the admin listeners, then
/// owns the main thread: signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads), a once-a-second
/// look at every watched file, and SVID renewal. The executable only parses arguments and calls
/// `run`.
public struct ProxyApplication {
    public let configPath: String
    public let workers: Int?
    public let version: String

    public init(configPath: String, workers: Int?, version: String) {
        self.configPath = configPath
        self.workers = workers
        self.version = version
    }

    /// Runs until SIGTERM or SIGINT (or `/quitquitquit`). Returns the process exit status:
    /// 0 after a drain, 2 for a config that does not load, 1 when the proxy cannot start.
    public func run() -> Int32 {
        let loaded: ProxyConfig
        do {
            loaded = try ProxyConfig.load(file: configPath)
        } catch {
            ProxyApplication.stderr("hbone: invalid config: \(error)\n")
            return 2
        }
        // Signals are taken by this thread only (sigtimedwait); workers must inherit the mask.
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&mask, s) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)

        let proxy: Proxy
        do {
            proxy = try Proxy(config: loaded, workers: workers)
            try proxy.start()
        } catch {
            ProxyApplication.stderr("hbone: \(error)\n")
            return 1
        }
        // Admin, metrics and readiness run on their own thread; /quitquitquit takes the SIGTERM path.
        let admin = AdminServer(routes: AdminRoutes(proxy: proxy, version: version, onQuit: { kill(getpid(), SIGTERM) }))
        let listen = loaded.settings.listen
        let adminListeners = [(AdminRoutes.Port.admin, listen.admin), (.metrics, listen.metrics), (.readiness, listen.readiness)]
            .compactMap { port, address in address.map { (port, $0) } }
        do {
            try admin.start(adminListeners)
        } catch {
            ProxyApplication.stderr("hbone: \(error)\n")
            proxy.shutdown(drain: .zero)
            return 1
        }
        defer { admin.stop() }
        for w in loaded.policyWarnings { log.warn("authorization policy", ["detail": w]) }
        if case .ca = loaded.settings.certificates {
            log.warn("certificates.ca: this node holds an intermediate CA key; that suits single-node and test setups, not production clusters")
        }
        var watched = ConfigWatcher.fingerprint(configPath: configPath, settings: loaded.settings, workloads: loaded.localWorkloads)
        var drain = loaded.settings.timeouts.drain
        while true {
            var timeout = timespec(tv_sec: 1, tv_nsec: 0)
            let signal = sigtimedwait(&mask, nil, &timeout)
            if signal == SIGTERM || signal == SIGINT {
                log.info("signal received", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT"])
                proxy.shutdown(drain: drain)
                return 0
            }
            let now = ConfigWatcher.fingerprint(configPath: configPath, settings: proxy.state.settings, workloads: proxy.state.config.localWorkloads)
            let renewalDue = proxy.state.nextRenewal.map { $0 <= Date() } ?? false
            if signal == SIGHUP || now != watched || renewalDue {
                watched = now
                do {
                    let next = try ProxyConfig.load(file: configPath)
                    for w in next.policyWarnings { log.warn("authorization policy", ["detail": w]) }
                    try proxy.reload(config: next)
                    drain = next.settings.timeouts.drain
                } catch {
                    // A bad reload keeps the last good config.
                    log.error("config reload rejected; keeping the last good config", ["error": "\(error)"])
                }
            }
        }
    }

    static func stderr(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
