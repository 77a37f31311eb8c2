import Testing
import HBONECore

/// Kubernetes CPU quantities as the chart and the downward API write them, in whole CPUs rounded up.
@Suite struct CPUQuantityTests {
    @Test func quantitiesInCoresAndMillicores() {
        for (text, cores) in [("2", 2), ("1.5", 2), ("500m", 1), ("2000m", 2), ("2001m", 3), (" 3 ", 3), ("0.1", 1), ("64", 64)] {
            #expect(CPUQuantity.cores(text) == cores, "\(text)")
        }
        for bad in ["", "0", "0m", "-1", "two", "m", "1.5.2", "inf", "nan", "1e9", "2 cores"] {
            #expect(CPUQuantity.cores(bad) == nil, "\(bad)")
        }
    }

    @Test func theLimitIsTheFirstVariableSetInZtunnelsOrder() {
        #expect(CPUQuantity.limit([:]) == nil)
        #expect(CPUQuantity.limit(["ZTUNNEL_CPU_LIMIT": "8"]) == 8)
        #expect(CPUQuantity.limit(["ZTUNNEL_CPU_LIMIT": "8", "ZTUNNEL_RESOURCE_CPU_LIMIT": "250m"]) == 1)
        #expect(CPUQuantity.limit(["ZTUNNEL_CPU_LIMIT": "8", "HBONE_CPU_LIMIT": "2"]) == 2)
        #expect(CPUQuantity.limit(["ZTUNNEL_RESOURCE_CPU_LIMIT": "", "ZTUNNEL_CPU_LIMIT": "4"]) == 4)
    }
}
