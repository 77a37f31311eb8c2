extension BidirectionalCollection where Element == UInt8 {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace around a header's
    /// parts: `forwarded`, `baggage`). No copy: a slice of the same bytes.
    @inlinable
    public func trimmingOWS() -> SubSequence {
        func isSpace(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        return self[first...last]
    }
}
