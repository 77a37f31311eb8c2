import ArgumentParser
import Foundation
import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEAdmin
#if canImport(Glibc)
import Glibc
#endif

struct HBONECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hbone",
        abstract: "A per-node HBONE proxy: mTLS + HTTP/2 CONNECT tunnels between workloads, SPIFFE-keyed authorization.",
        version: HBONEVersion.string,
        subcommands: [ProxyCommand.self, ValidateCommand.self, AdminCommand.self, CACommand.self, CheckCommand.self])
}

enum HBONEVersion {
    static let string = "0.1.0"
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "trace, debug, info, warn, error or off.")
    var logLevel: String = "info"

    @Option(help: "logfmt or json.")
    var logFormat: String = "logfmt"

    func apply() throws {
        guard let level = LogLevel(name: logLevel) else { throw ValidationError("--log-level must be trace, debug, info, warn, error or off") }
        guard let format = LogFormat(rawValue: logFormat) else { throw ValidationError("--log-format must be logfmt or json") }
        log.level = level
        log.format = format
    }
}

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proxy", abstract: "Run the proxy.")

    @Option(help: "The config file (ztunnel LocalConfig keys plus hbone: settings).")
    var config: String

    @Option(help: "Event loops (threads); default: hbone.workers or one per core.")
    var workers: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let workers, workers < 1 || workers > 256 { throw ValidationError("--workers must be 1-256") }
    }

    func run() throws {
        try logging.apply()
        let loaded: ProxyConfig
        do {
            loaded = try ProxyConfig.load(file: config)
        } catch {
            FileHandleOutput.stderr("hbone: invalid config: \(error)\n")
            throw ExitCode(2)
        }
        // Signals are taken by this thread only (sigwait); workers must inherit the mask.
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&mask, s) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)

        let proxy: Proxy
        do {
            proxy = try Proxy(config: loaded, workers: workers)
            try proxy.start()
        } catch {
            FileHandleOutput.stderr("hbone: \(error)\n")
            throw ExitCode(1)
        }
        // Admin, metrics and readiness run on their own thread; /quitquitquit takes the SIGTERM path.
        let admin = AdminServer(routes: AdminRoutes(proxy: proxy, version: HBONEVersion.string, onQuit: { kill(getpid(), SIGTERM) }))
        let listen = loaded.settings.listen
        let adminListeners = [(AdminRoutes.Port.admin, listen.admin), (.metrics, listen.metrics), (.readiness, listen.readiness)]
            .compactMap { port, address in address.map { (port, $0) } }
        do {
            try admin.start(adminListeners)
        } catch {
            FileHandleOutput.stderr("hbone: \(error)\n")
            proxy.shutdown(drain: .zero)
            throw ExitCode(1)
        }
        defer { admin.stop() }
        for w in loaded.policyWarnings { log.warn("authorization policy", ["detail": w]) }
        if case .ca = loaded.settings.certificates {
            log.warn("certificates.ca: this node holds an intermediate CA key; that suits single-node and test setups, not production clusters")
        }
        var watched = fingerprint(config, settings: loaded.settings, workloads: loaded.localWorkloads)
        var drain = loaded.settings.timeouts.drain
        while true {
            var timeout = timespec(tv_sec: 1, tv_nsec: 0)
            let signal = sigtimedwait(&mask, nil, &timeout)
            if signal == SIGTERM || signal == SIGINT {
                log.info("signal received", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT"])
                proxy.shutdown(drain: drain)
                return
            }
            let now = fingerprint(config, settings: proxy.state.settings, workloads: proxy.state.config.localWorkloads)
            let renewalDue = proxy.state.nextRenewal.map { $0 <= Date() } ?? false
            if signal == SIGHUP || now != watched || renewalDue {
                watched = now
                do {
                    let next = try ProxyConfig.load(file: config)
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

    /// What a change of the config, a policy file (or directory listing), the root bundle or a
    /// local SVID changes: any difference reloads everything, so rotations need no restart.
    private func fingerprint(_ config: String, settings: Settings, workloads: [Workload]) -> [String] {
        let policies = settings.authorizationPolicies
        var out: [String] = []
        // stat(2) follows symlinks: a Kubernetes secret volume swaps its ..data link, the file names stay.
        func add(_ path: String) {
            var st = stat()
            if stat(path, &st) == 0 {
                out.append("\(path)|\(st.st_ino)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)|\(st.st_size)")
            } else {
                out.append("\(path)|missing")
            }
        }
        add(config)
        add(settings.rootCertificates)
        switch settings.certificates {
        case let .directory(dir):
            for w in workloads {
                add("\(dir)/\(w.namespace)/\(w.serviceAccount)/cert-chain.pem")
                add("\(dir)/\(w.namespace)/\(w.serviceAccount)/key.pem")
            }
        case let .ca(issuance):
            for f in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"] { add(issuance.directory + "/" + f) }
        }
        for p in policies {
            add(p)
            if let names = try? FileManager.default.contentsOfDirectory(atPath: p) {
                for n in names.sorted() where n.hasSuffix(".yaml") || n.hasSuffix(".yml") { add(p + "/" + n) }
            }
        }
        return out
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check a config file and exit.")

    @Option(help: "The config file.")
    var config: String

    func run() throws {
        do {
            let c = try ProxyConfig.load(file: config)
            print("\(config): OK (\(c.workloads.count) workloads, \(c.localWorkloads.count) local, \(c.services.count) services, \(c.policies.count) policies)")
        } catch {
            FileHandleOutput.stderr("hbone: invalid config: \(error)\n")
            throw ExitCode(2)
        }
    }
}

enum FileHandleOutput {
    static func stderr(_ s: String) {
        FileHandle.standardError.write(s.data(using: .utf8)!)
    }
}
