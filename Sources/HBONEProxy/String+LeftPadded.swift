extension String {
    /// Zero-padded on the left to `width` (hex bytes of a traceparent).
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
