import CHBONEPosix
import Foundation

/// How many event loops to run when `--workers` and `hbone.workers` are not set, as ztunnel sizes
/// its worker pool: the CPU limit it is given (`ZTUNNEL_CPU_LIMIT`, or `HBONE_CPU_LIMIT`), else the
/// cgroup's CPU quota (`cpu.max`), else the CPUs it may run on (the affinity mask; `taskset -c 0`
/// gives one), never more than that mask.
public enum CPUBudget {
    public static func workers(environment: [String: String] = ProcessInfo.processInfo.environment,
                               cpuMax: String? = try? String(contentsOfFile: "/sys/fs/cgroup/cpu.max", encoding: .utf8),
                               affinity: Int = Int(chbone_affinity_cpus())) -> Int {
        let mask = affinity > 0 ? affinity : max(1, ProcessInfo.processInfo.activeProcessorCount)
        for name in ["HBONE_CPU_LIMIT", "ZTUNNEL_CPU_LIMIT"] {
            if let text = environment[name], let limit = Double(text.trimmingCharacters(in: .whitespaces)), limit > 0 {
                return max(1, min(mask, Int(limit.rounded(.up))))
            }
        }
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
