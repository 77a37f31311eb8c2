import Foundation
import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEAdmin
import HBONEControlPlane
import HBONEInPod
import HBONETLS
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
        // The same checks `hbone validate` makes, so both refuse a config with the same words.
        let loaded: ProxyConfig
        let prepared: ProxyState.Loaded?
        switch StartupCheck.run(configPath: configPath) {
        case let .success(report):
            loaded = report.config
            prepared = report.state
        case let .failure(failure):
            ProxyApplication.stderr("hbone: \(failure.description)\n")
            return failure.exitCode
        }
        // Signals are taken by this thread only (sigtimedwait); workers must inherit the mask.
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&mask, s) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        // From here on a stalled stderr reader cannot block a loop: lines are queued, dropped and
        // counted when the queue is full, and flushed at exit. (Made after the mask: its thread
        // must not take SIGTERM either.)
        log.useBackgroundWriter()
        defer { log.flush() }

        let sources = ConfigSources(file: loaded)
        let proxy: Proxy
        do {
            proxy = try Proxy(config: loaded, workers: workers, issued: sources.issued, prepared: prepared)
            try proxy.start()
        } catch {
            ProxyApplication.stderr("hbone: \(error)\n")
            return 1
        }
        let controlPlane: ControlPlane?
        do {
            controlPlane = try ProxyApplication.startControlPlane(loaded, sources: sources, proxy: proxy)
        } catch {
            ProxyApplication.stderr("hbone: \(error)\n")
            proxy.shutdown(drain: .zero)
            return 1
        }
        defer { controlPlane?.stop() }
        let zds = ProxyApplication.startInPod(loaded, sources: sources, proxy: proxy, controlPlane: controlPlane)
        defer { zds?.stop() }
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
        for w in loaded.configWarnings { log.warn("config", ["detail": w]) }
        if case .ca = loaded.settings.certificates {
            log.warn("certificates.ca: this node holds an intermediate CA key; that suits single-node and test setups, not production clusters")
        }
        var watched = ConfigWatcher.fingerprint(configPath: configPath, settings: loaded.settings, workloads: loaded.localWorkloads)
        // The parsed file and its inputs' content hash: a reload for a certificate change (or a
        // touch) reuses it instead of parsing 100,000 workloads again.
        var parsed = (config: loaded, hash: ConfigWatcher.contentHash(configPath: configPath, settings: loaded.settings))
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
                    let hash = ConfigWatcher.contentHash(configPath: configPath, settings: parsed.config.settings)
                    let next: ProxyConfig
                    if hash != nil && hash == parsed.hash {
                        next = parsed.config
                    } else {
                        next = try ProxyConfig.load(file: configPath)
                        parsed = (next, ConfigWatcher.contentHash(configPath: configPath, settings: next.settings))
                        for w in next.policyWarnings { log.warn("authorization policy", ["detail": w]) }
                        for w in next.configWarnings { log.warn("config", ["detail": w]) }
                        proxy.recordReparse()
                    }
                    if next.settings.controlPlane != loaded.settings.controlPlane || next.settings.certificates != loaded.settings.certificates {
                        log.warn("control-plane settings changed in the file; they apply after a restart")
                    }
                    sources.update(file: next)
                    try sources.apply(to: proxy, controlPlane: controlPlane)
                    drain = next.settings.timeouts.drain
                } catch {
                    // A bad reload keeps the last good config; the failure is counted and shown.
                    proxy.recordReloadFailure("\(error)")
                    log.error("config reload rejected; keeping the last good config", ["error": "\(error)"])
                }
            }
        }
    }

    /// Starts the xDS client and the CA client when the settings ask for either; their snapshots are
    /// applied like file reloads.
    static func startControlPlane(_ config: ProxyConfig, sources: ConfigSources, proxy: Proxy) throws -> ControlPlane? {
        let settings = config.settings
        let useCA = settings.certificates == .istioCA
        guard settings.controlPlane.xdsAddress != nil || useCA else { return nil }
        var caTrust: TrustBundle?
        if useCA && !settings.rootCertificates.isEmpty { caTrust = try TrustBundle(file: settings.rootCertificates) }
        // The callbacks run on the control-plane thread; ControlPlane is created before they can fire.
        let link = Locked<ControlPlane?>(nil)
        @Sendable func apply(_ what: String) {
            do { try sources.apply(to: proxy, controlPlane: link.withLock { $0 }) } catch {
                proxy.recordReloadFailure("\(what): \(error)")
                log.error("\(what) not applied; keeping the last good state", ["error": "\(error)"])
            }
        }
        // Applied off the control plane's thread, one at a time, a burst coalesced into one.
        let applier = DispatchQueue(label: "hbone.control-plane-apply")
        let xdsUpdate = CoalescingRunner(queue: applier) { apply("xDS update") }
        let certificateUpdate = CoalescingRunner(queue: applier) { apply("certificate update") }
        let cp = try ControlPlane(settings: settings.controlPlane, node: settings.node, useCA: useCA, caTrust: caTrust,
                                  onXDS: { snapshot in
                                      sources.update(xds: snapshot)
                                      xdsUpdate.request()
                                  },
                                  onCertificates: { certs in
                                      sources.update(issued: IssuedCertificates(keys: certs.keys, roots: certs.roots, problems: certs.problems))
                                      certificateUpdate.request()
                                  })
        link.withLock { $0 = cp }
        proxy.attach(ControlPlaneReport(controlPlane: cp))
        cp.start()
        cp.want(identities: Set(config.certifiedLocalWorkloads.map(\.identity)))
        log.info("control plane", ["xds": settings.controlPlane.xdsAddress?.description ?? "off",
                                   "ca": useCA ? settings.controlPlane.caAddress.description : "off",
                                   "node": settings.node, "cluster": settings.controlPlane.clusterID])
        return cp
    }

    /// In-pod mode: the ZDS client takes pods from the CNI agent; each change is applied (listeners
    /// bound in the pod on every worker) before it is ACKed.
    static func startInPod(_ config: ProxyConfig, sources: ConfigSources, proxy: Proxy, controlPlane: ControlPlane?) -> ZDSClient? {
        guard let inPod = config.settings.inPod else { return nil }
        let client = ZDSClient(path: inPod.uds, apply: { changes in
            sources.update(pods: changes)
            do {
                try sources.apply(to: proxy, controlPlane: controlPlane, waitForWorkers: true)
                return nil
            } catch {
                return "cannot apply: \(error)"
            }
        }, known: { sources.podUIDs })
        proxy.attach(InPodReport(client: client, sources: sources, proxy: proxy))
        client.start()
        log.info("in-pod mode", ["uds": inPod.uds, "mark": "\(config.settings.packetMark ?? 0)"])
        return client
    }

    static func stderr(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
