extension CPUProfile {
    /// The profile in pprof's format (uncompressed protobuf, as ztunnel's /debug/pprof/profile
    /// answers; `go tool pprof` reads it): sample types samples/count and cpu/nanoseconds, one
    /// location per address with its function, a "thread" label per sample.
    public func pprof() -> [UInt8] {
        pprof(symbolizer: Symbolizer())
    }

    func pprof(symbolizer: Symbolizer) -> [UInt8] {
        var builder = PprofBuilder(symbolizer: symbolizer, sampleTypes: [("samples", "count"), ("cpu", "nanoseconds")],
                                   periodType: ("cpu", "nanoseconds"), period: periodNanos)
        builder.setTime(wallNanos: startedWallNanos, durationNanos: durationNanos)
        if dropped > 0 { builder.setComment(["\(dropped) samples dropped: the ring filled between two drains"]) }
        // Stacks in a fixed order, so the same samples give the same bytes.
        let ordered = stacks.sorted { a, b in a.thread != b.thread ? a.thread < b.thread : a.frames.lexicographicallyPrecedes(b.frames) }
        for stack in ordered {
            builder.addSample(frames: stack.frames, exactLeaf: true, values: [stack.count, stack.count * periodNanos],
                              labels: [("thread", stack.thread)])
        }
        return builder.serialized()
    }
}
