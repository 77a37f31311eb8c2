import Atomics
import Synchronization
import HBONECore

/// The Istio label set of one TCP metric series (hbone-reference §5).
struct TCPLabels: Hashable, Sendable {
    var reporter: String
    var sourcePrincipal: String
    var sourceWorkload: String
    var sourceNamespace: String
    var sourceCluster: String
    var destinationPrincipal: String
    var destinationWorkload: String
    var destinationNamespace: String
    var destinationService: String
    var destinationCluster: String
    var responseFlags: String
    var securityPolicy: String

    /// The label set in the exposition format. Values come from config and, soon, from istiod: each is
    /// escaped, so a name with a quote, a backslash or a newline cannot break or forge a series.
    var prometheus: String {
        let e = PrometheusText.escaped
        return "reporter=\"\(e(reporter))\",source_principal=\"\(e(sourcePrincipal))\",source_workload=\"\(e(sourceWorkload))\","
            + "source_workload_namespace=\"\(e(sourceNamespace))\",source_cluster=\"\(e(sourceCluster))\","
            + "destination_principal=\"\(e(destinationPrincipal))\",destination_workload=\"\(e(destinationWorkload))\","
            + "destination_workload_namespace=\"\(e(destinationNamespace))\",destination_service=\"\(e(destinationService))\","
            + "destination_cluster=\"\(e(destinationCluster))\",request_protocol=\"tcp\","
            + "response_flags=\"\(e(responseFlags))\",connection_security_policy=\"\(e(securityPolicy))\""
    }
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

    func counters(_ labels: TCPLabels) -> TCPCounters {
        series.withLock { map in
            if let c = map[labels] { return c }
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
