import HBONEConfig

extension TCPLabels {
    /// Istio's labels for a connection (hbone-reference §5); missing values are "unknown". The
    /// destination service's name and namespace are the ones the connection went to: a hostname
    /// shared by services in several namespaces names a different one for each client.
    /// `borrowing`: an initializer's parameters are owned by default, and copying a connection's
    /// info (two identities of four strings, two baggages of seven, a few more) to pass it was
    /// ~700 instructions per series lookup.
    init(_ info: borrowing ConnectionInfo, flags: String) {
        let u = "unknown"
        // Fields are read through optional chains, and the series is built in one call: binding
        // a workload or a baggage (`if let b = info.srcBaggage`) copied it, and assigning after
        // `self.init` copied the labels.
        let sourceService: String, sourceRevision: String
        if info.srcWorkload != nil {
            sourceService = info.srcWorkload?.canonicalName ?? u
            sourceRevision = info.srcWorkload?.canonicalRevision ?? u
        } else {
            sourceService = info.srcBaggage?.serviceName ?? u
            sourceRevision = info.srcBaggage?.revision ?? u
        }
        // The destination's own answer first: through a gateway, the workload here is only
        // istiod's stand-in for the service's endpoints there.
        let destinationService = info.dstBaggage?.serviceName ?? info.dstWorkload?.canonicalName ?? u
        let destinationRevision = info.dstBaggage?.revision ?? info.dstWorkload?.canonicalRevision ?? u
        let serviceNamed = info.dstServiceName != nil && info.dstServiceNamespace != nil
        self.init(
            reporter: info.direction == .outbound ? "source" : "destination",
            sourcePrincipal: info.srcIdentity?.description ?? u,
            sourceWorkload: info.srcWorkload?.workloadName ?? info.srcBaggage?.workloadName ?? u,
            sourceNamespace: info.srcWorkload?.namespace ?? info.srcBaggage?.namespace ?? info.srcIdentity?.namespace ?? u,
            sourceCanonicalService: sourceService,
            sourceCanonicalRevision: sourceRevision,
            sourceCluster: info.srcWorkload?.clusterId ?? info.srcBaggage?.clusterId ?? u,
            destinationPrincipal: info.dstIdentity?.description ?? u,
            destinationWorkload: info.dstBaggage?.workloadName ?? info.dstWorkload?.workloadName ?? u,
            destinationNamespace: info.dstBaggage?.namespace ?? info.dstWorkload?.namespace ?? u,
            destinationCanonicalService: destinationService,
            destinationCanonicalRevision: destinationRevision,
            destinationService: info.dstService ?? u,
            destinationServiceName: serviceNamed ? info.dstServiceName ?? u : u,
            destinationServiceNamespace: serviceNamed ? info.dstServiceNamespace ?? u : u,
            destinationCluster: info.dstBaggage?.clusterId ?? info.dstWorkload?.clusterId ?? u,
            responseFlags: flags,
            securityPolicy: info.mutualTLS ? "mutual_tls" : "unknown")
    }

    /// Whether a peer's `baggage` names any of the labels `init(_:flags:)` makes: the source's when
    /// this proxy has no workload for it, the destination's whenever it answered with one.
    static func namesBaggage(_ info: borrowing ConnectionInfo) -> Bool {
        info.dstBaggage != nil || (info.srcWorkload == nil && info.srcBaggage != nil)
    }

    /// The labels of what the proxy itself knows of the connection (its workloads, the peers'
    /// verified identities), as if no baggage had come: where a tunnel counts once the proxy holds
    /// as many series named by baggage as it may.
    init(ignoringBaggage info: borrowing ConnectionInfo, flags: String) {
        var known = copy info
        known.srcBaggage = nil
        known.dstBaggage = nil
        self.init(known, flags: flags)
    }
}
