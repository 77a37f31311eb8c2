import Foundation
import HBONECore
import HBONEConfig
import HBONEIdentity
import HBONEProxy
import HBONEControlPlane

/// The proxy's config as the sum of its sources: the file (always; ztunnel's `LOCAL_XDS_PATH`
/// equivalent), what istiod's xDS holds, and the SVIDs the Istio CA issued. Whichever changes, the
/// merged snapshot is rebuilt and applied as a reload; a reload that fails keeps the last good one.
final class ConfigSources: Sendable {
    private struct Inputs {
        var file: ProxyConfig
        var xds: ControlPlane.XDSSnapshot?
        var issued: IssuedCertificates?
    }

    private let inputs: Locked<Inputs>
    /// Applies merged snapshots one at a time, in the order they were built.
    private let applying = NSLock()

    init(file: ProxyConfig) {
        inputs = Locked(Inputs(file: file, xds: nil, issued: file.settings.certificates == .istioCA ? IssuedCertificates() : nil))
    }

    var issued: IssuedCertificates? { inputs.withLock { $0.issued } }

    /// File workloads, services and policies first, then xDS's (a resource in both: xDS wins where
    /// the proxy looks things up by address or hostname).
    var merged: ProxyConfig {
        inputs.withLock { i in
            var config = i.file
            if let x = i.xds {
                config.workloads += x.workloads
                config.services += x.services
                config.policies += x.policies
            }
            return config
        }
    }

    func update(file: ProxyConfig) { inputs.withLock { $0.file = file } }
    func update(xds: ControlPlane.XDSSnapshot) { inputs.withLock { $0.xds = xds } }
    func update(issued: IssuedCertificates) { inputs.withLock { $0.issued = issued } }

    /// Builds the merged config and reloads the proxy with it; then tells the control plane which
    /// identities local workloads need. Throws what the reload threw (the proxy keeps its state).
    func apply(to proxy: Proxy, controlPlane: ControlPlane?) throws(ProxyError) {
        applying.lock()
        defer { applying.unlock() }
        let config = merged
        try proxy.reload(config: config, issued: issued)
        controlPlane?.want(identities: Set(config.certifiedLocalWorkloads.map(\.identity)))
    }
}
