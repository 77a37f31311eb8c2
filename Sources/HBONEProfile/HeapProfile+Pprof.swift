extension HeapProfile {
    /// The profile in pprof's format, as Go's heap profile gives it: sample types
    /// alloc_objects/count, alloc_space/bytes, inuse_objects/count and inuse_space/bytes (the
    /// default; `-sample_index=alloc_space` shows where allocation happens), period type
    /// space/bytes with the sampling interval, values already scaled to what the samples stand for.
    public func pprof() -> [UInt8] {
        pprof(symbolizer: Symbolizer())
    }

    func pprof(symbolizer: Symbolizer) -> [UInt8] {
        var builder = PprofBuilder(symbolizer: symbolizer,
                                   sampleTypes: [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")],
                                   periodType: ("space", "bytes"), period: Int64(clamping: sampleInterval))
        builder.setDefaultSampleType("inuse_space")
        builder.setTime(wallNanos: takenWallNanos, durationNanos: 0)
        if dropped > 0 { builder.setComment(["\(dropped) samples not recorded: the sampler's tables were full"]) }
        for stack in stacks.sorted(by: { $0.frames.lexicographicallyPrecedes($1.frames) }) {
            builder.addSample(frames: stack.frames, exactLeaf: false,
                              values: [stack.allocatedObjects, stack.allocatedBytes, stack.liveObjects, stack.liveBytes])
        }
        return builder.serialized()
    }
}
