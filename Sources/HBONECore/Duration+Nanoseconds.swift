/// Timeouts are `Duration`s in the config and nanoseconds on the loop's timer heap.
extension Duration {
    public var nanoseconds: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto) / 1_000_000_000)
    }
}
