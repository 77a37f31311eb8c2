import HBONECore

/// The metric series whose labels a peer's `baggage` named, for the whole proxy. What a peer says
/// of itself is free text: without a bound, every new claim (a workload name, a revision, a
/// cluster) would be a series kept for the life of the process, and one peer could grow the
/// proxy's memory and every scrape without limit. A label set counts once however many loops
/// count on it; series are never dropped (their counters must not go back), so a place, once
/// taken, stays taken. Consulted only when a loop meets such a label set for the first time.
final class BaggageSeriesBudget: Sendable {
    private let held = Locked<Set<TCPLabels>>([])

    init() {}

    /// Whether `labels` may name a series: they already do, or fewer than `limit` label sets do
    /// (and now these do too).
    func admit(_ labels: TCPLabels, limit: Int) -> Bool {
        held.withLock { set in
            if set.contains(labels) { return true }
            guard set.count < limit else { return false }
            set.insert(labels)
            return true
        }
    }

    var count: Int { held.withLock { $0.count } }
}
