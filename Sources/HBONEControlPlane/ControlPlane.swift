import Foundation
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEIdentity
import HBONETLS
import HBONEXDS
import HBONEAuthz

/// istiod's two services for a node proxy, on a thread and loop of their own: the Delta xDS client
/// (workloads, services, policies) and the certificate fetcher (local workloads' SVIDs from the
/// Istio CA). Both hand the proxy immutable snapshots through the callbacks, exactly as config
/// reloads do; nothing here touches a worker loop.
public final class ControlPlane: @unchecked Sendable {
    // Mutable state lives on `loop` (set before the thread starts, then only touched there); the
    // status is behind its lock.

    /// What xDS holds, taken from the client's store in O(1) (the dictionaries are shared until the
    /// store next changes); policies put in order by name when read, off the control plane's thread.
    public struct XDSSnapshot: Sendable {
        public let workloadsByName: [String: Workload]
        public let servicesByName: [String: Service]
        let policiesByName: [String: Policy]
        /// The workloads and services (by name) changed since the snapshot before this one.
        public let changed: Set<String>

        public var policies: [Policy] { Self.ordered(policiesByName) }

        static func ordered<T>(_ byName: [String: T]) -> [T] { byName.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// What the CA issued now.
    public struct Certificates: Sendable {
        public var keys: [SPIFFEID: CertifiedKey]
        /// Roots the CA returned (the trust bundle when no root file is configured).
        public var roots: [Certificate]
        /// Why each wanted identity has no certificate.
        public var problems: [SPIFFEID: String]
    }

    public let settings: ControlPlaneSettings
    public let usesXDS: Bool
    public let usesCA: Bool
    private let statusLock = Locked(ControlPlaneStatus())
    private let loop: EventLoop
    private var xds: XDSClient?
    private var fetcher: CertificateFetcher?
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - node: the node whose workloads are local (`NODE_NAME`, else `hbone.node`).
    ///   - caTrust: the configured root file's bundle; nil trusts the roots the CA returns.
    public init(settings: ControlPlaneSettings, node: String, useCA: Bool, caTrust: TrustBundle?,
                onXDS: @escaping @Sendable (XDSSnapshot) -> Void,
                onCertificates: @escaping @Sendable (Certificates) -> Void) throws(ControlPlaneError) {
        self.settings = settings
        usesXDS = settings.xdsAddress != nil
        usesCA = useCA
        do { loop = try EventLoop(index: 1000) } catch { throw ControlPlaneError("control-plane event loop: \(error)") }
        let network = SocketNetwork()
        func context(_ file: String, _ what: String) throws(ControlPlaneError) -> ControlPlaneTLSContext {
            do { return try ControlPlaneTLSContext(trust: TrustBundle(file: file)) } catch {
                throw ControlPlaneError("\(what) root certificate \(file): \(error.reason)")
            }
        }
        if let address = settings.xdsAddress {
            let tls = try context(settings.xdsRootCertificate ?? settings.caRootCertificate, "xDS")
            let client = XDSClient(loop: loop, settings: settings, endpoint: address, tls: tls, network: network, node: node)
            client.onUpdate = { store, changed in
                onXDS(XDSSnapshot(workloadsByName: store.workloads, servicesByName: store.services, policiesByName: store.policies, changed: changed))
            }
            client.report = { [statusLock] change in statusLock.withLock { change(&$0) } }
            xds = client
        }
        if useCA {
            let tls = try context(settings.caRootCertificate, "CA")
            let f = CertificateFetcher(loop: loop, settings: settings, tls: tls, network: network, configuredTrust: caTrust)
            f.onChange = { issued in onCertificates(Certificates(keys: issued.keys, roots: issued.roots, problems: issued.problems)) }
            f.report = { [statusLock] change in statusLock.withLock { change(&$0) } }
            fetcher = f
        }
        statusLock.withLock {
            $0.xdsAddress = settings.xdsAddress?.description
            $0.caAddress = useCA ? settings.caAddress.description : nil
            $0.caEnabled = useCA
        }
    }

    /// Starts the thread; the clients connect at once.
    public func start() {
        let thread = Thread { [self] in
            Socket.setThreadName("hbone-xds")
            loop.post { [self] in xds?.start() }
            loop.run()
            xds?.stop()
            fetcher?.stop()
            loop.runOnce(timeoutMillis: 0)
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The identities local HBONE workloads need now (certificates are fetched and dropped to match).
    public func want(identities: Set<SPIFFEID>) {
        guard usesCA else { return }
        loop.post { [self] in fetcher?.want(identities) }
    }

    public func stop() {
        loop.stop()
        finished.wait()
    }

    public var status: ControlPlaneStatus { statusLock.withLock { $0 } }
}

public struct ControlPlaneError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
