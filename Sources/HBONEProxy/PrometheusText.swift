/// The Prometheus text exposition format's rules for label values.
public enum PrometheusText {
    /// The `# HELP` and `# TYPE` lines that open a metric family.
    public static func family(_ name: String, _ type: String, _ help: String) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// `\` → `\\`, `"` → `\"`, newline → `\n`; nothing else changes.
    public static func escaped(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5c || $0 == 0x22 || $0 == 0x0a }) else { return value }
        var out = ""
        out.reserveCapacity(value.utf8.count + 8)
        for c in value.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
