import SwiftProtobuf

/// Builds a pprof profile (profile.proto) from stacks of this process's code addresses: the string
/// table, one location per address with its function, and the mappings they fall in, each written
/// once. The CPU and heap profiles differ only in their sample types and values.
struct PprofBuilder {
    private(set) var profile = Perftools_Profiles_Profile()
    private var strings: [String] = [""]
    private var stringIndex: [String: Int64] = ["": 0]
    private var mappingIDs: [Int: UInt64] = [:]   // symbolizer's mapping index → id
    private var locationIDs: [UInt64: UInt64] = [:]
    private var functionIDs: [Symbolizer.Function: UInt64] = [:]
    private var symbolizer: Symbolizer

    init(symbolizer: Symbolizer, sampleTypes: [(type: String, unit: String)], periodType: (type: String, unit: String), period: Int64) {
        self.symbolizer = symbolizer
        profile.sampleType = sampleTypes.map { valueType($0.type, $0.unit) }
        profile.periodType = valueType(periodType.type, periodType.unit)
        profile.period = period
    }

    /// pprof's string table: index 0 is "", each string once.
    mutating func string(_ s: String) -> Int64 {
        if let i = stringIndex[s] { return i }
        let i = Int64(strings.count)
        strings.append(s)
        stringIndex[s] = i
        return i
    }

    mutating func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType {
        var v = Perftools_Profiles_ValueType()
        v.type = string(type)
        v.unit = string(unit)
        return v
    }

    mutating func setComment(_ lines: [String]) { profile.comment = lines.map { string($0) } }
    mutating func setTime(wallNanos: Int64, durationNanos: Int64) {
        profile.timeNanos = wallNanos
        profile.durationNanos = durationNanos
    }
    mutating func setDefaultSampleType(_ type: String) { profile.defaultSampleType = string(type) }

    /// Adds a sample. `frames` are innermost first; a return address is named by the instruction
    /// before it (the call), so a call that ends its function is not named after the next one.
    /// `exactLeaf`: frames[0] is an instruction being executed (a CPU sample's PC), not a return address.
    mutating func addSample(frames: [UInt64], exactLeaf: Bool, values: [Int64],
                            labels: [(key: String, text: String)] = [], numbers: [(key: String, value: Int64, unit: String)] = []) {
        var sample = Perftools_Profiles_Sample()
        sample.locationID = frames.enumerated().map { locationID($0.element, exact: exactLeaf && $0.offset == 0) }
        sample.value = values
        for label in labels {
            var l = Perftools_Profiles_Label()
            l.key = string(label.key)
            l.str = string(label.text)
            sample.label.append(l)
        }
        for number in numbers {
            var l = Perftools_Profiles_Label()
            l.key = string(number.key)
            l.num = number.value
            l.numUnit = string(number.unit)
            sample.label.append(l)
        }
        profile.sample.append(sample)
    }

    /// The uncompressed protobuf (what ztunnel's endpoints answer; `go tool pprof` reads it).
    mutating func serialized() -> [UInt8] {
        profile.stringTable = strings
        return (try? profile.serializedBytes()) ?? []
    }

    private mutating func locationID(_ address: UInt64, exact: Bool) -> UInt64 {
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
                entry.filename = string(mapping.path)
                entry.buildID = string(symbolizer.buildID(ofMapping: m) ?? "")
                entry.hasFunctions_p = true
                profile.mapping.append(entry)
                mappingIDs[m] = entry.id
                location.mappingID = entry.id
            }
        }
        if let function = symbolizer.function(at: exact ? address : address &- 1) {
            let id: UInt64
            if let known = functionIDs[function] {
                id = known
            } else {
                id = UInt64(functionIDs.count + 1)
                functionIDs[function] = id
                var f = Perftools_Profiles_Function()
                f.id = id
                f.name = string(function.name)
                f.systemName = string(function.systemName)
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
}
