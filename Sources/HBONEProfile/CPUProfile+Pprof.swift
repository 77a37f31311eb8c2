import SwiftProtobuf

extension CPUProfile {
    /// The profile in pprof's format (uncompressed protobuf, as ztunnel's /debug/pprof/profile
    /// answers; `go tool pprof` reads it): sample types samples/count and cpu/nanoseconds, one
    /// location per address with its function, a "thread" label per sample.
    public func pprof() -> [UInt8] {
        var symbolizer = Symbolizer()
        return pprof(symbolizer: &symbolizer)
    }

    func pprof(symbolizer: inout Symbolizer) -> [UInt8] {
        var strings = StringTable()
        var profile = Perftools_Profiles_Profile()
        profile.sampleType = [valueType("samples", "count", &strings), valueType("cpu", "nanoseconds", &strings)]
        profile.periodType = valueType("cpu", "nanoseconds", &strings)
        profile.period = periodNanos
        profile.timeNanos = startedWallNanos
        profile.durationNanos = durationNanos
        if dropped > 0 { profile.comment = [strings["\(dropped) samples dropped: the ring filled between two drains"]] }

        var mappingIDs: [Int: UInt64] = [:]   // symbolizer's mapping index → id
        var locationIDs: [UInt64: UInt64] = [:]
        var functionIDs: [Symbolizer.Function: UInt64] = [:]
        let threadKey = strings["thread"]

        func locationID(_ address: UInt64, leaf: Bool) -> UInt64 {
            if let id = locationIDs[address] { return id }
            var location = Perftools_Profiles_Location()
            location.id = UInt64(locationIDs.count + 1)
            location.address = address
            if let m = symbolizer.mappingIndex(of: address) {
                if let id = mappingIDs[m] {
                    location.mappingID = id
                } else {
                    let mapping = symbolizer.mappings[m]
                    var entry = Perftools_Profiles_Mapping()
                    entry.id = UInt64(mappingIDs.count + 1)
                    entry.memoryStart = mapping.start
                    entry.memoryLimit = mapping.limit
                    entry.fileOffset = mapping.fileOffset
                    entry.filename = strings[mapping.path]
                    entry.buildID = strings[symbolizer.buildID(ofMapping: m) ?? ""]
                    entry.hasFunctions_p = true
                    profile.mapping.append(entry)
                    mappingIDs[m] = entry.id
                    location.mappingID = entry.id
                }
            }
            if let function = symbolizer.function(at: leaf ? address : address &- 1) {
                let id: UInt64
                if let known = functionIDs[function] {
                    id = known
                } else {
                    id = UInt64(functionIDs.count + 1)
                    functionIDs[function] = id
                    var f = Perftools_Profiles_Function()
                    f.id = id
                    f.name = strings[function.name]
                    f.systemName = strings[function.systemName]
                    profile.function.append(f)
                }
                var line = Perftools_Profiles_Line()
                line.functionID = id
                location.line = [line]
            }
            locationIDs[address] = location.id
            profile.location.append(location)
            return location.id
        }

        // Stacks in a fixed order, so the same samples give the same bytes.
        let ordered = stacks.sorted { a, b in a.thread != b.thread ? a.thread < b.thread : a.frames.lexicographicallyPrecedes(b.frames) }
        for stack in ordered {
            var sample = Perftools_Profiles_Sample()
            // Callers' frames are return addresses: named by the instruction before them.
            sample.locationID = stack.frames.enumerated().map { locationID($0.element, leaf: $0.offset == 0) }
            sample.value = [stack.count, stack.count * periodNanos]
            var label = Perftools_Profiles_Label()
            label.key = threadKey
            label.str = strings[stack.thread]
            sample.label = [label]
            profile.sample.append(sample)
        }
        profile.stringTable = strings.all
        return (try? profile.serializedBytes()) ?? []
    }

    private func valueType(_ type: String, _ unit: String, _ strings: inout StringTable) -> Perftools_Profiles_ValueType {
        var v = Perftools_Profiles_ValueType()
        v.type = strings[type]
        v.unit = strings[unit]
        return v
    }
}

/// pprof's string table: index 0 is "", each string once.
private struct StringTable {
    private(set) var all: [String] = [""]
    private var index: [String: Int64] = ["": 0]

    subscript(_ s: String) -> Int64 {
        mutating get {
            if let i = index[s] { return i }
            let i = Int64(all.count)
            all.append(s)
            index[s] = i
            return i
        }
    }
}
