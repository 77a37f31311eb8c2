import HBONEConfig

extension TCPLabels {
    /// Istio's labels for a connection (hbone-reference §5); missing values are "unknown". The
    /// destination service's name and namespace are the ones the connection went to: a hostname
    /// shared by services in several namespaces names a different one for each client.
    init(_ info: ConnectionInfo, flags: String) {
        let u = "unknown"
        self.init(
            reporter: info.direction == .outbound ? "source" : "destination",
            sourcePrincipal: info.srcIdentity?.description ?? u,
            sourceWorkload: info.srcWorkload?.workloadName ?? u,
            sourceNamespace: info.srcWorkload?.namespace ?? info.srcIdentity?.namespace ?? u,
            sourceCluster: info.srcWorkload?.clusterId ?? u,
            destinationPrincipal: info.dstIdentity?.description ?? u,
            destinationWorkload: info.dstWorkload?.workloadName ?? u,
            destinationNamespace: info.dstWorkload?.namespace ?? u,
            destinationService: info.dstService ?? u,
            destinationCluster: info.dstWorkload?.clusterId ?? u,
            responseFlags: flags,
            securityPolicy: info.mutualTLS ? "mutual_tls" : "unknown")
        if let w = info.srcWorkload {
            sourceCanonicalService = w.canonicalName
            sourceCanonicalRevision = w.canonicalRevision
        }
        if let w = info.dstWorkload {
            destinationCanonicalService = w.canonicalName
            destinationCanonicalRevision = w.canonicalRevision
        }
        if let name = info.dstServiceName, let namespace = info.dstServiceNamespace {
            destinationServiceName = name
            destinationServiceNamespace = namespace
        }
    }
}
