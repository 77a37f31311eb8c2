import HBONEConfig
import HBONEIdentity

extension ProxyState {
    /// The `baggage` this proxy sends for `w`, a local workload (as the source of a CONNECT, as the
    /// destination answering one).
    func baggageHeader(for w: Workload) -> String {
        localBaggage[w.uid] ?? Baggage(w).headerValue(workloadType: w.workloadType)
    }

    /// What a peer's `baggage` may say of it, for metrics: nil when there is none, or when it names
    /// a namespace that is not the one in the peer's verified identity (a workload of one namespace
    /// must not be counted as another's: `rejected` is then true).
    static func peerBaggage(_ values: [String], identity: SPIFFEID?) -> (baggage: Baggage?, rejected: Bool) {
        guard !values.isEmpty else { return (nil, false) }
        let b = Baggage(parsing: values)
        if let claimed = b.namespace, let identity, claimed != identity.namespace { return (nil, true) }
        return (b.isEmpty ? nil : b, false)
    }
}
