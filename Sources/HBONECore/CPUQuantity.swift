/// A Kubernetes CPU quantity as the downward API and Istio's chart pass it to ztunnel
/// (`ZTUNNEL_RESOURCE_CPU_LIMIT`, `ZTUNNEL_CPU_LIMIT`): "2", "1.5" or "500m", as whole CPUs
/// rounded up, so a limit of half a core still gets one worker.
public enum CPUQuantity {
    /// Nil for anything that is not a positive, finite quantity.
    public static func cores(_ text: String) -> Int? {
        let t = String(Substring(text).drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        let value: Double?
        if t.hasSuffix("m") { value = Double(t.dropLast()).map { $0 / 1000 } } else { value = Double(t) }
        guard let v = value, v.isFinite, v > 0, v <= 1_000_000 else { return nil }
        return Int(v.rounded(.up))
    }

    /// The variables that name this process's CPU limit, in the order ztunnel reads them (its
    /// `get_cpu_count`): the chart's explicit limit, then the downward API's (which is the node's
    /// CPUs when no limit is set); `HBONE_CPU_LIMIT` beside the latter for runs outside Kubernetes.
    public static let limitVariables = ["ZTUNNEL_RESOURCE_CPU_LIMIT", "HBONE_CPU_LIMIT", "ZTUNNEL_CPU_LIMIT"]

    /// The first limit set among `limitVariables`, else nil.
    public static func limit(_ environment: [String: String]) -> Int? {
        for name in limitVariables {
            if let text = environment[name], !text.isEmpty, let n = cores(text) { return n }
        }
        return nil
    }
}
