import CHBONEPosix
import HBONECore
import Foundation

/// How many event loops to run when `--workers`, `hbone.workers` and `ZTUNNEL_WORKER_THREADS` are
/// not set: one per CPU this process may use. That is the CPU limit it is given
/// (`CPUQuantity.limitVariables`: Istio's chart passes `resources.limits.cpu`), else the cgroup's
/// CPU quota (`cpu.max`), else the CPUs it may run on (the affinity mask; `taskset -c 0` gives
/// one), never more than that mask.
public enum CPUBudget {
    public static func workers(environment: [String: String] = ProcessInfo.processInfo.environment,
                               cpuMax: String? = try? String(contentsOfFile: "/sys/fs/cgroup/cpu.max", encoding: .utf8),
                               affinity: Int = Int(chbone_affinity_cpus())) -> Int {
        let mask = affinity > 0 ? affinity : max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let limit = CPUQuantity.limit(environment) { return max(1, min(mask, limit)) }
        if let quota = cpuMax.flatMap(quotaCPUs) { return max(1, min(mask, quota)) }
        return mask
    }

    /// cgroup v2 `cpu.max`: "<quota> <period>" (microseconds) or "max <period>" for no limit.
    static func quotaCPUs(_ text: String) -> Int? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0, quota > 0 else { return nil }
        return Int((quota / period).rounded(.up))
    }
}
