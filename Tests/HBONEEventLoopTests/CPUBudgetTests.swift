import Testing
@testable import HBONEEventLoop

/// Workers when none are configured: the CPU limit, else the cgroup quota, else the affinity mask.
@Suite struct CPUBudgetTests {
    @Test func theLimitWinsThenTheQuotaThenTheMask() {
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_CPU_LIMIT": "2"], cpuMax: "400000 100000", affinity: 8) == 2)
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_CPU_LIMIT": "1.5"], cpuMax: nil, affinity: 8) == 2)
        #expect(CPUBudget.workers(environment: [:], cpuMax: "150000 100000\n", affinity: 8) == 2)
        #expect(CPUBudget.workers(environment: [:], cpuMax: "max 100000\n", affinity: 8) == 8)
        #expect(CPUBudget.workers(environment: [:], cpuMax: nil, affinity: 1) == 1)   // taskset -c 0
        // Never more loops than CPUs it may run on, never fewer than one; junk is ignored.
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_CPU_LIMIT": "16"], cpuMax: nil, affinity: 4) == 4)
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_CPU_LIMIT": "lots"], cpuMax: "garbage", affinity: 3) == 3)
    }

    /// Istio's chart (1.31) passes `resources.limits.cpu` as ZTUNNEL_RESOURCE_CPU_LIMIT, a quantity
    /// that may be in millicores; it wins over ZTUNNEL_CPU_LIMIT, which the downward API fills with
    /// the node's CPUs when no limit is set.
    @Test func theChartsExplicitLimitWins() {
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_RESOURCE_CPU_LIMIT": "500m", "ZTUNNEL_CPU_LIMIT": "1"], cpuMax: nil, affinity: 8) == 1)
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_RESOURCE_CPU_LIMIT": "2500m", "ZTUNNEL_CPU_LIMIT": "8"], cpuMax: nil, affinity: 8) == 3)
        #expect(CPUBudget.workers(environment: ["ZTUNNEL_CPU_LIMIT": "1500m"], cpuMax: nil, affinity: 8) == 2)
    }

    @Test func thisProcessHasAMask() {
        #expect(CPUBudget.workers() >= 1)
    }
}
