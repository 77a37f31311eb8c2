import Foundation
import Testing
import Atomics
@testable import HBONEProxy

/// Series named by peers' baggage are bounded for the whole proxy; series of what the proxy knows
/// itself are not, and a series that exists is always found.
@Suite struct MetricsShardTests {
    func labels(_ workload: String) -> TCPLabels {
        TCPLabels(reporter: "destination", sourcePrincipal: "spiffe://cluster.local/ns/a/sa/x", sourceWorkload: workload, sourceNamespace: "a",
                  sourceCluster: "far", destinationPrincipal: "spiffe://cluster.local/ns/b/sa/y", destinationWorkload: "server",
                  destinationNamespace: "b", destinationService: "unknown", destinationCluster: "here", responseFlags: "-",
                  securityPolicy: "mutual_tls")
    }

    @Test func claimedSeriesAreBoundedAcrossTheProxysLoops() {
        let budget = BaggageSeriesBudget()
        let a = MetricsShard(baggageBudget: budget), b = MetricsShard(baggageBudget: budget)
        let first = a.counters(claimed: labels("w1"), limit: 2)
        #expect(first != nil)
        #expect(b.counters(claimed: labels("w2"), limit: 2) != nil)
        // The third, on either loop, is refused; the series held are still found, and found again
        // without taking another place.
        #expect(a.counters(claimed: labels("w3"), limit: 2) == nil)
        #expect(b.counters(claimed: labels("w3"), limit: 2) == nil)
        #expect(a.counters(claimed: labels("w1"), limit: 2) === first)
        #expect(budget.count == 2)
        // Series of what the proxy knows itself are not bounded.
        let known = a.counters(labels("unknown"))
        #expect(a.counters(labels("unknown")) === known)
        #expect(budget.count == 2)
        // A limit raised by a reload applies to the next new series.
        #expect(a.counters(claimed: labels("w3"), limit: 3) != nil)
        #expect(budget.count == 3)
        #expect(MetricsShard().counters(claimed: labels("w1"), limit: 0) == nil)
    }

    /// One label set takes one place, on however many loops it is counted.
    @Test func aSeriesCountedOnSeveralLoopsTakesOnePlace() {
        let budget = BaggageSeriesBudget()
        let a = MetricsShard(baggageBudget: budget), b = MetricsShard(baggageBudget: budget)
        #expect(a.counters(claimed: labels("w1"), limit: 1) != nil)
        #expect(b.counters(claimed: labels("w1"), limit: 1) != nil)
        #expect(b.counters(claimed: labels("w2"), limit: 1) == nil)
        #expect(budget.count == 1)
    }

    @Test func loopsAdmittingAtOnceNeverExceedTheLimit() async {
        let budget = BaggageSeriesBudget()
        let admitted = ManagedAtomic<Int>(0)
        await withTaskGroup(of: Void.self) { group in
            for loop in 0..<8 {
                group.addTask {
                    for i in 0..<200 where budget.admit(labels("w\(loop)-\(i)"), limit: 1000) { admitted.wrappingIncrement(ordering: .relaxed) }
                }
            }
        }
        #expect(admitted.load(ordering: .relaxed) == 1000)
        #expect(budget.count == 1000)
    }
}
