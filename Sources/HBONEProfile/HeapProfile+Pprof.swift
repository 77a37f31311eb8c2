extension HeapProfile {
    /// The profile in pprof's format, as Go's heap profile and ztunnel's /debug/pprof/heap give
    /// it: sample types inuse_objects/count and inuse_space/bytes (the default), period type
    /// space/bytes with the sampling interval, values already scaled to what the samples stand
    /// for, and a numeric "bytes" label with each stack's allocation size.
    public func pprof() -> [UInt8] {
        pprof(symbolizer: Symbolizer())
    }

    func pprof(symbolizer: Symbolizer) -> [UInt8] {
        var builder = PprofBuilder(symbolizer: symbolizer, sampleTypes: [("inuse_objects", "count"), ("inuse_space", "bytes")],
                                   periodType: ("space", "bytes"), period: Int64(clamping: sampleInterval))
        builder.setDefaultSampleType("inuse_space")
        builder.setTime(wallNanos: takenWallNanos, durationNanos: 0)
        if dropped > 0 { builder.setComment(["\(dropped) samples dropped: the sampler's table of live samples was full"]) }
        let ordered = stacks.sorted { a, b in a.frames != b.frames ? a.frames.lexicographicallyPrecedes(b.frames) : a.size < b.size }
        for stack in ordered {
            let estimate = Self.estimate(size: stack.size, count: stack.count, interval: sampleInterval)
            builder.addSample(frames: stack.frames, exactLeaf: false,
                              values: [Int64(estimate.objects.rounded()), Int64(estimate.bytes.rounded())],
                              numbers: [("bytes", Int64(clamping: stack.size), "bytes")])
        }
        return builder.serialized()
    }
}
