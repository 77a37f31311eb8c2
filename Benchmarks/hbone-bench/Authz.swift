import ArgumentParser
import Foundation
import HBONEAuthz
import HBONEBenchFixtures

/// Authorization decision time: 10 policies, and 10,000 policies over 1,000 namespaces of which
/// about 10 apply to the destination. The baseline is an empty policy set in the same run.
struct Authz: ParsableCommand {
    @Option(help: "Decisions per batch.") var batch = 10_000
    @Option(help: "Batches per scenario (median and p99 over batches).") var batches = 200
    @OptionGroup var report: ReportOptions

    func run() throws {
        let facts = PolicyFixtures.facts, target = PolicyFixtures.target
        let scenarios: [(String, PolicySet)] = [
            ("baseline: no policies", PolicySet([])),
            ("10 policies", PolicyFixtures.ten()),
            ("10,000 policies / 1,000 namespaces", PolicyFixtures.tenThousand()),
        ]
        var medians: [Double] = []
        for (name, set) in scenarios {
            var expected: Decision?
            var perDecision: [Double] = []
            for _ in 0..<batches {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var last: Decision?
                for _ in 0..<batch { last = set.decide(facts, for: target) }
                let t1 = DispatchTime.now().uptimeNanoseconds
                perDecision.append(Double(t1 - t0) / Double(batch))
                if expected == nil { expected = last }
            }
            perDecision.sort()
            print(String(format: "%-38@ median %7.1f ns  p99 %7.1f ns  (%@)", name as NSString, percentile(perDecision, 0.5), percentile(perDecision, 0.99),
                         (expected?.description ?? "-") as NSString))
            medians.append(percentile(perDecision, 0.5))
        }
        try report.emit([
            Figure("authz", "decision, 10 policies (median)", value: medians[1], unit: "ns", baseline: ("no policies", medians[0]),
                   higherIsBetter: false, target: ("≤ 1 µs", medians[1] <= 1000)),
            Figure("authz", "decision, 10,000 policies over 1,000 namespaces (median)", value: medians[2], unit: "ns",
                   baseline: ("no policies", medians[0]), higherIsBetter: false, target: ("≤ 5 µs", medians[2] <= 5000)),
        ])
        printCommand()
    }
}
