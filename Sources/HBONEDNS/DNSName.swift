/// A domain name as it travels in a DNS message: its labels, byte for byte (case kept, so an answer
/// repeats the question exactly as asked). Comparisons that decide anything use `key`.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public let labels: [[UInt8]]

    /// At most 63 bytes per label and 255 on the wire (RFC 1035 2.3.4); longer is refused by `init`.
    public static let maxLabel = 63
    public static let maxWire = 255

    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= DNSName.maxLabel }),
              labels.reduce(1, { $0 + $1.count + 1 }) <= DNSName.maxWire else { return nil }
        self.labels = labels
    }

    /// From dotted text (`ledger.payments.svc.cluster.local`, a trailing dot allowed).
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasSuffix(".") { t = t.dropLast() }
        if t.isEmpty {
            self.init(labels: [])
            return
        }
        self.init(labels: t.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) })
    }

    /// Lower-case dotted text without the trailing dot, or nil when a label holds a byte no host
    /// name has (a dot, a control byte, anything outside letters, digits, `-`, `_` and `*`): such a
    /// name can never be a service's hostname and is only ever forwarded.
    public var key: String? {
        var out: [UInt8] = []
        out.reserveCapacity(labels.reduce(0) { $0 + $1.count + 1 })
        for (i, label) in labels.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ".")) }
            for b in label {
                switch b {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): out.append(b | 0x20)
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "*"):
                    out.append(b)
                default: return nil
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Printable text for logs: other bytes as `\DDD`, as dig prints them.
    public var description: String {
        if labels.isEmpty { return "." }
        var s = ""
        for label in labels {
            for b in label {
                if b > 0x20 && b < 0x7f && b != UInt8(ascii: ".") && b != UInt8(ascii: "\\") {
                    s.unicodeScalars.append(Unicode.Scalar(b))
                } else {
                    let d = String(b)
                    s += "\\" + String(repeating: "0", count: 3 - d.count) + d
                }
            }
            s += "."
        }
        return s
    }

    /// Equal ignoring ASCII case (RFC 4343).
    public func sameName(as other: DNSName) -> Bool { DNSName.sameLabels(labels[...], other.labels[...]) }

    static func sameLabels(_ a: ArraySlice<[UInt8]>, _ b: ArraySlice<[UInt8]>) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) where DNSName.fold(p) != DNSName.fold(q) { return false }
        }
        return true
    }

    @inline(__always) static func fold(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b | 0x20 : b }
}
