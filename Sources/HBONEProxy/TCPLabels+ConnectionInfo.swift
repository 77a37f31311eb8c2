import HBONEConfig

extension TCPLabels {
    /// Istio's labels for a connection (hbone-reference §5); missing values are "unknown". The
    /// destination service's name and namespace are the ones the connection went to: a hostname
    /// shared by services in several namespaces names a different one for each client.
    /// `borrowing`: an initializer's parameters are owned by default, and copying a connection's
    /// info (two workloads, each a dozen strings) to pass it was ~700 instructions per series lookup.
    init(_ info: borrowing ConnectionInfo, flags: String) {
        let u = "unknown"
        self.init(
            reporter: info.direction == .outbound ? "source" : "destination",
            sourcePrincipal: info.srcIdentity?.description ?? u,
            sourceWorkload: info.srcWorkload?.workloadName ?? info.srcBaggage?.workloadName ?? u,
            sourceNamespace: info.srcWorkload?.namespace ?? info.srcBaggage?.namespace ?? info.srcIdentity?.namespace ?? u,
            sourceCluster: info.srcWorkload?.clusterId ?? info.srcBaggage?.clusterId ?? u,
            destinationPrincipal: info.dstIdentity?.description ?? u,
            destinationWorkload: info.dstBaggage?.workloadName ?? info.dstWorkload?.workloadName ?? u,
            destinationNamespace: info.dstBaggage?.namespace ?? info.dstWorkload?.namespace ?? u,
            destinationService: info.dstService ?? u,
            destinationCluster: info.dstBaggage?.clusterId ?? info.dstWorkload?.clusterId ?? u,
            responseFlags: flags,
            securityPolicy: info.mutualTLS ? "mutual_tls" : "unknown")
        if let w = info.srcWorkload {
            sourceCanonicalService = w.canonicalName
            sourceCanonicalRevision = w.canonicalRevision
        } else if let b = info.srcBaggage {
            sourceCanonicalService = b.serviceName ?? u
            sourceCanonicalRevision = b.revision ?? u
        }
        // The destination's own answer first: through a gateway, the workload here is only
        // istiod's stand-in for the service's endpoints there.
        if let w = info.dstWorkload {
            destinationCanonicalService = w.canonicalName
            destinationCanonicalRevision = w.canonicalRevision
        }
        if let b = info.dstBaggage {
            destinationCanonicalService = b.serviceName ?? destinationCanonicalService
            destinationCanonicalRevision = b.revision ?? destinationCanonicalRevision
        }
        if let name = info.dstServiceName, let namespace = info.dstServiceNamespace {
            destinationServiceName = name
            destinationServiceNamespace = namespace
        }
    }
}
