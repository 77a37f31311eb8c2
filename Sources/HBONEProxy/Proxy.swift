import Foundation
import Synchronization
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONETLS
import Atomics

/// The running proxy: one worker thread per loop, each with its own listeners (SO_REUSEPORT).
/// Methods here run on the caller's thread and reach workers only by posting to their loops.
public final class Proxy: Sendable {
    private let workerCount: Int
    private let loops: Locked<[EventLoop]> = Locked([])
    let statsList: [ProxyStats]
    /// Series named by peers' baggage, for all loops (each loop's shard holds it too).
    let baggageBudget = BaggageSeriesBudget()
    let started = ManagedAtomic<Bool>(false)
    private let current: Locked<ProxyState>
    private let done = DispatchGroupBox()
    public let missingCertificates: [String]
    /// Serializes reloads: the config watcher and the control plane both apply new snapshots.
    private let reloading = NSLock()
    private let statusSources = Locked<[any ProxyStatusSource]>([])
    /// Reloads refused (bad file, certificates that do not load, a control-plane snapshot that does
    /// not apply), the last one's reason, and how often the file was actually parsed again.
    let reloadFailures = ManagedAtomic<UInt64>(0)
    let reparses = ManagedAtomic<UInt64>(0)
    private let lastReloadError = Locked<(at: Date, reason: String)?>(nil)

    /// `prepared`: the first state, already built from `config` (by the start-up check), so the
    /// SVIDs are not parsed or issued and the TLS contexts not built a second time.
    public init(config: ProxyConfig, workers: Int? = nil, issued: IssuedCertificates? = nil,
                prepared: ProxyState.Loaded? = nil) throws(ProxyError) {
        let (state, missing): ProxyState.Loaded
        if let prepared { (state, missing) = prepared } else { (state, missing) = try ProxyState.load(config: config, version: 1, issued: issued) }
        for m in missing { log.warn("no usable certificate", ["detail": m]) }
        missingCertificates = missing
        current = Locked(state)
        workerCount = workers ?? config.settings.workers ?? CPUBudget.workers()
        statsList = (0..<workerCount).map { [baggageBudget] _ in ProxyStats(baggageBudget: baggageBudget) }
    }

    public var state: ProxyState { current.withLock { $0 } }

    /// Starts every worker and returns once all listeners are bound (or throws the first bind error).
    public func start() throws(ProxyError) {
        _ = Socket.raiseFileLimit()
        Socket.ignoreSIGPIPE()
        let state = self.state
        let ready = DispatchSemaphore(value: 0)
        let errors = Locked<[String]>([])
        for i in 0..<workerCount {
            let stats = statsList[i]
            done.enter()
            let thread = Thread { [self] in
                Socket.setThreadName("hbone-worker-\(i)")
                let loop: EventLoop
                do { loop = try EventLoop(index: i) } catch {
                    errors.withLock { $0.append("event loop: \(error)") }
                    ready.signal()
                    done.leave()
                    return
                }
                loops.withLock { $0.append(loop) }
                let worker = Worker(loop: loop, state: state, stats: stats)
                WorkerRegistry.register(worker)
                defer { WorkerRegistry.unregister(worker) }
                do { try worker.syncListeners() } catch { errors.withLock { $0.append("\(error)") } }
                ready.signal()
                loop.run()
                worker.closeAll()
                loop.runOnce(timeoutMillis: 0)
                withExtendedLifetime(worker) {}
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in 0..<workerCount { ready.wait() }
        if let first = errors.withLock({ $0.first }) {
            stopLoops()
            throw ProxyError(.internal, .config, "cannot start: \(first)")
        }
        started.store(true, ordering: .relaxed)
        log.info("hbone started", ["workers": "\(workerCount)", "node": state.settings.node,
                                   "local_workloads": "\(state.config.localWorkloads.count)",
                                   "identities": state.identities.keys.map(\.description).sorted().joined(separator: ","),
                                   "openssl": TLSLibrary.version, "ec_keys": TLSLibrary.builtinECKeys ? "built-in method" : "provider",
                                   "openssl_malloc": TLSLibrary.threadCache ? "thread cache" : "system"])
    }

    /// Applies a new config (certificates and trust reloaded from disk, or `issued` by the Istio CA).
    /// A failure keeps the old one. Safe from any thread; reloads apply one at a time.
    /// `pods`: in-pod mode's pods. `waitForWorkers`: return only once every worker applied it
    /// (their listeners in new pods are bound, or failed and logged), as a ZDS ACK needs.
    /// `mesh`: the index of `config`'s workloads and services, kept up to date by the caller (nil:
    /// built from `config`).
    public func reload(config: ProxyConfig, issued: IssuedCertificates? = nil, pods: [String: InPodWorkload] = [:],
                       mesh: MeshIndex? = nil, waitForWorkers: Bool = false) throws(ProxyError) {
        reloading.lock()
        defer { reloading.unlock() }
        let version = state.version + 1
        let (newState, missing) = try ProxyState.load(config: config, version: version, previous: state, issued: issued, pods: pods, mesh: mesh)
        for m in missing { log.warn("no usable certificate", ["detail": m]) }
        current.withLock { $0 = newState }
        let applied = DispatchGroup()
        let loops = self.loops.withLock { $0 }
        for loop in loops {
            applied.enter()
            loop.post { [loop] in
                WorkerRegistry.worker(for: loop)?.update(newState)
                applied.leave()
            }
        }
        if waitForWorkers { _ = applied.wait(timeout: .now() + 10) }
        log.info("configuration applied", ["version": "\(version)"])
    }

    public func recordReloadFailure(_ reason: String) {
        reloadFailures.wrappingIncrement(ordering: .relaxed)
        lastReloadError.withLock { $0 = (Date(), reason) }
    }

    public func recordReparse() { reparses.wrappingIncrement(ordering: .relaxed) }

    var lastReloadFailure: (at: Date, reason: String)? { lastReloadError.withLock { $0 } }

    /// Adds `source`'s readiness, dump section and metrics to the admin views.
    public func attach(_ source: any ProxyStatusSource) { statusSources.withLock { $0.append(source) } }
    var attachedStatus: [any ProxyStatusSource] { statusSources.withLock { $0 } }

    /// Runs `body` on every worker's loop.
    func post(_ body: @escaping @Sendable (Worker) -> Void) {
        for loop in loops.withLock({ $0 }) {
            loop.post { [loop] in
                if let worker = WorkerRegistry.worker(for: loop) { body(worker) }
            }
        }
    }

    /// Graceful stop: stop accepting, GOAWAY, let tunnels finish until `drain`, close the rest.
    public func shutdown(drain: Duration) {
        log.info("draining", ["timeout": "\(drain)"])
        let loops = self.loops.withLock { $0 }
        // Each loop cuts its own tunnels at the deadline; this thread only waits for them.
        let nanos = drain.nanoseconds
        for loop in loops { loop.post { WorkerRegistry.worker(for: loop)?.startDrain(deadline: nanos) } }
        let deadline = ContinuousClock.now + drain
        while ContinuousClock.now < deadline && openTunnels > 0 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        if openTunnels > 0 { log.info("drain deadline reached", ["open_tunnels": "\(openTunnels)"]) }
        stopLoops()
        done.wait()
        log.info("hbone stopped")
    }

    private func stopLoops() {
        for loop in loops.withLock({ $0 }) { loop.stop() }
    }

    public var openTunnels: Int { statsList.reduce(0) { $0 + $1.openTunnels.load(ordering: .relaxed) } }
    public var workers: Int { workerCount }

    /// Totals over all loops (read without stopping them).
    public var totals: [String: UInt64] {
        var t: [String: UInt64] = [:]
        for s in statsList {
            t["tunnels_opened_inbound", default: 0] += s.tunnelsOpenedInbound.load(ordering: .relaxed)
            t["tunnels_opened_outbound", default: 0] += s.tunnelsOpenedOutbound.load(ordering: .relaxed)
            t["tunnels_closed_inbound", default: 0] += s.tunnelsClosedInbound.load(ordering: .relaxed)
            t["tunnels_closed_outbound", default: 0] += s.tunnelsClosedOutbound.load(ordering: .relaxed)
            t["tunnels_failed", default: 0] += s.tunnelsFailed.load(ordering: .relaxed)
            t["denied", default: 0] += s.denied.load(ordering: .relaxed)
            t["handshakes", default: 0] += s.handshakes.load(ordering: .relaxed)
            t["handshake_failures", default: 0] += s.handshakeFailures.load(ordering: .relaxed)
            t["hbone_connections_inbound", default: 0] += UInt64(max(0, s.hboneConnectionsInbound.load(ordering: .relaxed)))
            t["hbone_connections_outbound", default: 0] += UInt64(max(0, s.hboneConnectionsOutbound.load(ordering: .relaxed)))
            t["policy_rechecks", default: 0] += s.policyRechecks.load(ordering: .relaxed)
        }
        return t
    }
}

/// Finds the worker of the loop a posted task runs on (each loop thread registers its worker).
enum WorkerRegistry {
    private static let table = Locked<[ObjectIdentifier: WorkerRef]>([:])

    /// Strong, and only dereferenced on the worker's own loop (`worker(for:)`): a worker is
    /// registered for exactly as long as its loop runs.
    struct WorkerRef: @unchecked Sendable { let worker: Worker }

    static func register(_ worker: Worker) { table.withLock { $0[ObjectIdentifier(worker.loop)] = WorkerRef(worker: worker) } }
    static func unregister(_ worker: Worker) { _ = table.withLock { $0.removeValue(forKey: ObjectIdentifier(worker.loop)) } }
    /// Only valid on the loop's own thread, where the worker is alive.
    static func worker(for loop: EventLoop) -> Worker? { table.withLock { $0[ObjectIdentifier(loop)]?.worker } }
}

/// A counter of running threads that can be waited on.
final class DispatchGroupBox: Sendable {
    private let group = DispatchGroup()
    func enter() { group.enter() }
    func leave() { group.leave() }
    func wait() { group.wait() }
}
