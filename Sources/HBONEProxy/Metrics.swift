import Atomics
import Synchronization
import HBONECore

/// The Istio label set of one TCP metric series: ztunnel's `CommonTrafficLabels`, with its
/// derivations (app and version are the canonical service and revision; the service's name and
/// namespace come from the destination service), so Istio's dashboards find every label.
struct TCPLabels: Hashable, Sendable {
    var reporter: String
    var sourcePrincipal: String
    var sourceWorkload: String
    var sourceNamespace: String
    var sourceCanonicalService: String
    var sourceCanonicalRevision: String
    var sourceCluster: String
    var destinationPrincipal: String
    var destinationWorkload: String
    var destinationNamespace: String
    var destinationCanonicalService: String
    var destinationCanonicalRevision: String
    var destinationService: String
    var destinationServiceName: String
    var destinationServiceNamespace: String
    var destinationCluster: String
    var responseFlags: String
    var securityPolicy: String

    init(reporter: String, sourcePrincipal: String, sourceWorkload: String, sourceNamespace: String,
         sourceCanonicalService: String = "unknown", sourceCanonicalRevision: String = "unknown", sourceCluster: String,
         destinationPrincipal: String, destinationWorkload: String, destinationNamespace: String,
         destinationCanonicalService: String = "unknown", destinationCanonicalRevision: String = "unknown", destinationService: String,
         destinationServiceName: String = "unknown", destinationServiceNamespace: String = "unknown",
         destinationCluster: String, responseFlags: String, securityPolicy: String) {
        self.reporter = reporter
        self.sourcePrincipal = sourcePrincipal
        self.sourceWorkload = sourceWorkload
        self.sourceNamespace = sourceNamespace
        self.sourceCanonicalService = sourceCanonicalService
        self.sourceCanonicalRevision = sourceCanonicalRevision
        self.sourceCluster = sourceCluster
        self.destinationPrincipal = destinationPrincipal
        self.destinationWorkload = destinationWorkload
        self.destinationNamespace = destinationNamespace
        self.destinationCanonicalService = destinationCanonicalService
        self.destinationCanonicalRevision = destinationCanonicalRevision
        self.destinationService = destinationService
        self.destinationServiceName = destinationServiceName
        self.destinationServiceNamespace = destinationServiceNamespace
        self.destinationCluster = destinationCluster
        self.responseFlags = responseFlags
        self.securityPolicy = securityPolicy
    }

    /// The label set in the exposition format. Values come from config and from istiod: each is
    /// escaped, so a name with a quote, a backslash or a newline cannot break or forge a series.
    var prometheus: String {
        let e = PrometheusText.escaped
        let pairs: [(String, String)] = [
            ("reporter", reporter),
            ("source_workload", sourceWorkload), ("source_canonical_service", sourceCanonicalService),
            ("source_canonical_revision", sourceCanonicalRevision), ("source_workload_namespace", sourceNamespace),
            ("source_principal", sourcePrincipal), ("source_app", sourceCanonicalService), ("source_version", sourceCanonicalRevision),
            ("source_cluster", sourceCluster),
            ("destination_service", destinationService), ("destination_service_namespace", destinationServiceNamespace),
            ("destination_service_name", destinationServiceName),
            ("destination_workload", destinationWorkload), ("destination_canonical_service", destinationCanonicalService),
            ("destination_canonical_revision", destinationCanonicalRevision), ("destination_workload_namespace", destinationNamespace),
            ("destination_principal", destinationPrincipal), ("destination_app", destinationCanonicalService),
            ("destination_version", destinationCanonicalRevision), ("destination_cluster", destinationCluster),
            ("request_protocol", "tcp"), ("response_flags", responseFlags), ("connection_security_policy", securityPolicy),
        ]
        return pairs.map { "\($0.0)=\"\(e($0.1))\"" }.joined(separator: ",")
    }

    /// Each established tunnel finds its series by these labels. The hash takes the labels that
    /// tell series apart on a node (who, to whom, through which service, how it ended), not all
    /// 18: the rest follow from those nearly always, and hashing them was 4 % of a tunnel's
    /// instructions. Equality still compares every label, so a series that differs only in one
    /// left out is still its own.
    func hash(into hasher: inout Hasher) {
        hasher.combine(reporter)
        hasher.combine(sourcePrincipal)
        hasher.combine(sourceWorkload)
        hasher.combine(destinationWorkload)
        hasher.combine(destinationService)
        hasher.combine(responseFlags)
    }

    /// Labels in the series, for tests that count quotes.
    static let labelCount = 23
}

/// Counters of one series. Written by one loop with relaxed atomics (uncontended), read by scrapes.
final class TCPCounters: Sendable {
    let opened = ManagedAtomic<UInt64>(0)
    let closed = ManagedAtomic<UInt64>(0)
    let failed = ManagedAtomic<UInt64>(0)
    let received = ManagedAtomic<UInt64>(0)
    let sent = ManagedAtomic<UInt64>(0)
}

/// One loop's series. The map is touched once per connection (open/close), under a lock the
/// scrape shares; byte counts go straight to the series' atomics.
final class MetricsShard: Sendable {
    private let series = Locked<[TCPLabels: TCPCounters]>([:])
    /// Shared by all loops of a proxy.
    private let baggageBudget: BaggageSeriesBudget

    init(baggageBudget: BaggageSeriesBudget = BaggageSeriesBudget()) {
        self.baggageBudget = baggageBudget
    }

    func counters(_ labels: TCPLabels) -> TCPCounters {
        series.withLock { map in
            if let c = map[labels] { return c }
            let c = TCPCounters()
            map[labels] = c
            return c
        }
    }

    /// The series of labels a peer's baggage named: the one that exists, or a new one while the
    /// proxy holds fewer than `limit` such label sets; nil when that many are held already.
    /// (Lock order: this shard's, then the budget's; nothing takes them the other way round.)
    func counters(claimed labels: TCPLabels, limit: Int) -> TCPCounters? {
        series.withLock { map in
            if let c = map[labels] { return c }
            guard baggageBudget.admit(labels, limit: limit) else { return nil }
            let c = TCPCounters()
            map[labels] = c
            return c
        }
    }

    var snapshot: [(TCPLabels, TCPCounters)] { series.withLock { Array($0) } }
}

/// Handshake durations in fixed buckets (seconds), one writer per loop.
final class DurationHistogram: Sendable {
    static let bounds: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    let buckets = (0...DurationHistogram.bounds.count).map { _ in ManagedAtomic<UInt64>(0) }
    let sumNanos = ManagedAtomic<UInt64>(0)

    func observe(nanoseconds: UInt64) {
        let seconds = Double(nanoseconds) / 1e9
        let i = DurationHistogram.bounds.firstIndex { seconds <= $0 } ?? DurationHistogram.bounds.count
        buckets[i].wrappingIncrement(ordering: .relaxed)
        sumNanos.wrappingIncrement(by: nanoseconds, ordering: .relaxed)
    }
}
