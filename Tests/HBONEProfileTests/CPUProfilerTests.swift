import Glibc
import SwiftProtobuf
import Testing
@testable import HBONEProfile

/// The profiler is one per process: these tests take turns.
@Suite(.serialized) struct CPUProfilerTests {
    @Test func samplesABusyThreadAndNamesItsFunction() throws {
        let profiler = try CPUProfiler.start(frequency: 1000)
        #expect(throws: CPUProfiler.StartError.busy) { _ = try CPUProfiler.start(frequency: 100) }
        let start = threadCPUNanos()
        var sink = 0
        // Until 400 ms of this thread's CPU time; allocating, so a sanitizer that holds signals
        // until an intercepted call still delivers them.
        while threadCPUNanos() - start < 400_000_000 {
            sink &+= profileTestBusyLoop(seed: sink)
            profiler.drain()
        }
        let profile = profiler.stop()
        #expect(sink != 42)
        #expect(profile.sampleCount > 0)
        #expect(profile.durationNanos >= 400_000_000)
        #expect(profile.periodNanos == 1_000_000)

        let decoded = try Perftools_Profiles_Profile(serializedBytes: profile.pprof())
        let strings = decoded.stringTable
        #expect(strings.first == "")
        #expect(decoded.sampleType.map { strings[Int($0.type)] + "/" + strings[Int($0.unit)] } == ["samples/count", "cpu/nanoseconds"])
        #expect(decoded.period == 1_000_000)
        let locations = Dictionary(uniqueKeysWithValues: decoded.location.map { ($0.id, $0) })
        let functions = Dictionary(uniqueKeysWithValues: decoded.function.map { ($0.id, strings[Int($0.name)]) })
        let mappings = Set(decoded.mapping.map(\.id))
        var busy: Int64 = 0
        for sample in decoded.sample {
            #expect(sample.value.count == 2 && sample.value[1] == sample.value[0] * 1_000_000)
            #expect(sample.label.first.map { strings[Int($0.key)] } == "thread")
            let names = sample.locationID.compactMap { locations[$0] }.flatMap(\.line).compactMap { functions[$0.functionID] }
            #expect(sample.locationID.allSatisfy { locations[$0] != nil })
            #expect(sample.locationID.compactMap { locations[$0]?.mappingID }.allSatisfy { $0 == 0 || mappings.contains($0) })
            if names.contains(where: { $0.contains("profileTestBusyLoop") }) { busy += sample.value[0] }
        }
        #expect(busy > 0, "no sample named the busy function: \(decoded.function.map { strings[Int($0.name)] }.prefix(20))")
        #expect(decoded.sample.reduce(0) { $0 + $1.value[0] } == profile.sampleCount)
    }

    @Test func anotherProfileMayStartOnceOneStopped() throws {
        let first = try CPUProfiler.start(frequency: 100)
        _ = first.stop()
        let second = try CPUProfiler.start(frequency: 100)
        let profile = second.stop()
        #expect(profile.dropped == 0)
        // A profile abandoned without stop() ends with its owner.
        do { _ = try CPUProfiler.start(frequency: 100) }
        _ = try CPUProfiler.start(frequency: 100).stop()
    }

    @Test func frequencyOutsideTheRangeIsRefused() {
        #expect(throws: CPUProfiler.StartError.self) { _ = try CPUProfiler.start(frequency: 0) }
        #expect(throws: CPUProfiler.StartError.self) { _ = try CPUProfiler.start(frequency: 1001) }
    }
}

@inline(never)
func profileTestBusyLoop(seed: Int) -> Int {
    var values = [Int](repeating: seed, count: 64)
    for round in 0..<2_000 {
        for i in values.indices { values[i] = values[i] &* 6364136223846793005 &+ round }
    }
    return values.reduce(0, &+)
}

private func threadCPUNanos() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
