import Foundation
import Glibc
import SwiftProtobuf
import Testing
@testable import HBONEProfile

/// The sampler is one per process and this test process allocates through it (the target links
/// it, as `hbone` does): these tests take turns, and each looks only at the stacks of its own
/// functions, since every other test running meanwhile is sampled too.
@Suite(.serialized, .enabled(if: HeapProfiler.status.available)) struct HeapProfilerTests {
    /// The estimate of many small allocations: each sampled with probability size/interval, the
    /// sum scaled back. 4000 blocks at a 64 KiB interval give about 500 samples (±4.5 % one σ).
    /// Freed, they leave the live figures and stay in the allocated ones.
    @Test func estimatesTheLiveBytesOfSmallAllocationsAndForgetsFreedOnes() throws {
        try HeapProfiler.setActive(true, sampleInterval: 64 * 1024)
        defer { try? HeapProfiler.setActive(false) }
        let blocks = heapTestAllocate(count: 4000, size: 8192)
        let live = stacks(of: HeapProfiler.snapshot(), through: "heapTestAllocate")
        let liveBytes = Double(live.reduce(0) { $0 + $1.liveBytes })
        #expect(abs(liveBytes - 4000 * 8192) < 0.25 * 4000 * 8192, "estimate \(liveBytes) for \(4000 * 8192) bytes live")
        let objects = Double(live.reduce(0) { $0 + $1.liveObjects })
        #expect(abs(objects - 4000) < 0.25 * 4000, "estimate \(objects) for 4000 blocks")
        heapTestFree(blocks)
        let after = stacks(of: HeapProfiler.snapshot(), through: "heapTestAllocate")
        #expect(after.allSatisfy { $0.liveSamples == 0 && $0.liveBytes == 0 && $0.liveObjects == 0 })
        let allocated = Double(after.reduce(0) { $0 + $1.allocatedBytes })
        #expect(allocated == liveBytes, "allocated \(allocated), live before \(liveBytes)")
        // Activating again starts the allocated figures from what each stack still holds: nothing.
        try HeapProfiler.setActive(true, sampleInterval: 64 * 1024)
        #expect(stacks(of: HeapProfiler.snapshot(), through: "heapTestAllocate").isEmpty)
    }

    /// Blocks of 16 MiB at a 512 KiB interval are each sampled but with probability e^-32
    /// against, so every one is, and counts as itself: each entry point of the malloc family
    /// records its blocks, a realloc moves the sample to its new size and stack, and freeing
    /// takes them off.
    @Test func everyEntryPointRecordsAndForgets() throws {
        try HeapProfiler.setActive(true, sampleInterval: HeapProfiler.defaultSampleInterval)
        defer { try? HeapProfiler.setActive(false) }
        let big = 16 << 20
        let blocks = heapTestEveryEntryPoint(size: big)
        var mine = stacks(of: HeapProfiler.snapshot(), through: "heapTestEveryEntryPoint")
        // malloc, calloc, realloc(nil) of twice the size, posix_memalign, aligned_alloc, valloc.
        #expect(mine.reduce(0) { $0 + $1.liveSamples } == blocks.count, "\(mine)")
        #expect(mine.reduce(0) { $0 + $1.liveBytes } == Int64(7 * big) && mine.reduce(0) { $0 + $1.liveObjects } == 6, "\(mine)")
        let reallocated = heapTestReallocate(blocks[0], to: 3 * big)
        mine = stacks(of: HeapProfiler.snapshot(), through: "heapTestEveryEntryPoint")
        #expect(mine.reduce(0) { $0 + $1.liveSamples } == blocks.count - 1)
        #expect(mine.reduce(0) { $0 + $1.liveBytes } == Int64(6 * big) && mine.reduce(0) { $0 + $1.allocatedBytes } == Int64(7 * big))
        #expect(stacks(of: HeapProfiler.snapshot(), through: "heapTestReallocate").map(\.liveBytes) == [Int64(3 * big)])
        free(reallocated)
        blocks.dropFirst().forEach { free($0) }
        let after = HeapProfiler.snapshot()
        #expect((stacks(of: after, through: "heapTestEveryEntryPoint") + stacks(of: after, through: "heapTestReallocate")).allSatisfy { $0.liveSamples == 0 })
    }

    /// Threads allocating and freeing at once, with a sample every 4 KiB (thousands of samples
    /// coming and going, colliding in the table): once everything is freed, nothing is live.
    @Test func concurrentAllocationAndFreeLeaveNoStaleRecord() async throws {
        try HeapProfiler.setActive(true, sampleInterval: 4096)
        defer { try? HeapProfiler.setActive(false) }
        let threads = 8
        await withTaskGroup(of: Int.self) { group in
            for t in 0..<threads { group.addTask { heapTestChurn(seed: t + 1, rounds: 40_000) } }
            for await _ in group {}
        }
        let mine = stacks(of: HeapProfiler.snapshot(), through: "heapTestChurn")
        let left = mine.reduce(0) { $0 + $1.liveSamples }
        #expect(left == 0, "samples left of freed blocks")
        #expect(mine.allSatisfy { $0.liveBytes == 0 && $0.liveObjects == 0 })
        #expect(mine.reduce(0) { $0 + $1.allocatedSamples } > 1000)
        #expect(HeapProfiler.status.dropped == 0)
    }

    /// The pprof form: Go's heap sample types, the interval as period, and the allocating
    /// function named through the symbol table.
    @Test func thePprofFormNamesTheAllocatingFunction() throws {
        try HeapProfiler.setActive(true, sampleInterval: 64 * 1024)
        defer { try? HeapProfiler.setActive(false) }
        let blocks = heapTestAllocate(count: 500, size: 8192)
        defer { heapTestFree(blocks) }
        let profile = HeapProfiler.snapshot()
        let decoded = try Perftools_Profiles_Profile(serializedBytes: profile.pprof())
        let strings = decoded.stringTable
        #expect(strings.first == "")
        #expect(decoded.sampleType.map { strings[Int($0.type)] + "/" + strings[Int($0.unit)] }
                == ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"])
        #expect(strings[Int(decoded.defaultSampleType)] == "inuse_space")
        #expect(strings[Int(decoded.periodType.type)] == "space" && decoded.period == 64 * 1024)
        let locations = Dictionary(uniqueKeysWithValues: decoded.location.map { ($0.id, $0) })
        let functions = Dictionary(uniqueKeysWithValues: decoded.function.map { ($0.id, strings[Int($0.name)]) })
        var mine: Int64 = 0
        for sample in decoded.sample {
            #expect(sample.locationID.allSatisfy { locations[$0] != nil })
            #expect(sample.value.count == 4 && sample.value[0] >= sample.value[2] && sample.value[1] >= sample.value[3], "\(sample.value)")
            let names = sample.locationID.compactMap { locations[$0] }.flatMap(\.line).compactMap { functions[$0.functionID] }
            if names.first.map({ $0.contains("heapTestAllocate") }) == true { mine += sample.value[3] }
        }
        let expected = stacks(of: profile, through: "heapTestAllocate").reduce(0) { $0 + $1.liveBytes }
        #expect(mine > 0 && mine == expected, "\(mine) of \(expected) named by the allocating function: \(functions.values.sorted().prefix(30))")
    }

    @Test func activationIsRefusedWithoutTheSampler() {
        // Here it is linked; `HeapProfiler.ActivationError.unavailable` is what a binary without
        // it (a sanitizer build) answers, and its message says why.
        #expect("\(HeapProfiler.ActivationError.unavailable)".contains("sanitizer"))
        #expect(HeapProfiler.status.available)
    }

    /// The stacks whose allocating function is `function` (by its symbol name, from the test
    /// binary's table), with something allocated.
    private func stacks(of profile: HeapProfile, through function: String) -> [HeapProfile.Stack] {
        profile.stacks.filter { stack in
            stack.allocatedSamples > 0 && stack.frames.first.map { Self.symbolizer.function(at: $0 &- 1)?.name.contains(function) == true } == true
        }
    }

    /// One for the suite: reading the test binary's symbol table takes seconds, and its code does
    /// not move. The suite's tests take turns.
    nonisolated(unsafe) private static var symbolizer = Symbolizer()
}

/// Without a sampler (sanitizer builds) the profiler says so and refuses to start.
@Test(.enabled(if: !HeapProfiler.status.available)) func theHeapProfilerIsUnavailableWithoutItsSampler() {
    #expect(throws: HeapProfiler.ActivationError.unavailable) { try HeapProfiler.setActive(true) }
    #expect(HeapProfiler.snapshot().stacks.isEmpty)
}

@inline(never)
func heapTestAllocate(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    var blocks: [UnsafeMutableRawPointer] = []
    blocks.reserveCapacity(count)
    for _ in 0..<count { blocks.append(malloc(size)!) }
    return blocks
}

@inline(never)
func heapTestFree(_ blocks: [UnsafeMutableRawPointer]) {
    for b in blocks { free(b) }
}

/// One block from each entry point; the realloc one ends at twice the size.
@inline(never)
func heapTestEveryEntryPoint(size: Int) -> [UnsafeMutableRawPointer] {
    var out: [UnsafeMutableRawPointer] = []
    out.append(malloc(size)!)
    out.append(calloc(size / 16, 16)!)
    out.append(realloc(nil, 2 * size)!)
    var aligned: UnsafeMutableRawPointer?
    #expect(posix_memalign(&aligned, 4096, size) == 0)
    out.append(aligned!)
    out.append(aligned_alloc(64, size)!)
    out.append(valloc(size)!)
    return out
}

@inline(never)
func heapTestReallocate(_ block: UnsafeMutableRawPointer, to size: Int) -> UnsafeMutableRawPointer {
    realloc(block, size)!
}

/// Random sizes allocated and freed in random order, a few hundred live at a time; all freed at the end.
@inline(never)
func heapTestChurn(seed: Int, rounds: Int) -> Int {
    var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    var live: [UnsafeMutableRawPointer?] = Array(repeating: nil, count: 512)
    for _ in 0..<rounds {
        let slot = Int(next() % 512)
        if let p = live[slot] {
            if next() % 4 == 0 { live[slot] = realloc(p, Int(next() % 16384) + 1) } else { free(p); live[slot] = nil }
        } else {
            live[slot] = malloc(Int(next() % 16384) + 1)
        }
    }
    for p in live { free(p) }
    return 0
}
