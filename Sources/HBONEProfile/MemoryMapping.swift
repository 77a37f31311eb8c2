import Glibc

/// One executable mapping of the process (a line of /proc/self/maps with `x` and a file), as pprof
/// describes where code came from.
struct MemoryMapping: Equatable {
    var start: UInt64
    var limit: UInt64
    var fileOffset: UInt64
    var path: String

    /// The executable, file-backed mappings in `maps` (the text of /proc/<pid>/maps), by address.
    /// Lines that do not parse are skipped.
    static func executable(inMaps maps: String) -> [MemoryMapping] {
        var out: [MemoryMapping] = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].count == 4, fields[1].dropFirst(2).first == "x" else { continue }
            let range = fields[0].split(separator: "-")
            let path = fields[5].trimmingLeadingSpaces()
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let limit = UInt64(range[1], radix: 16),
                  let offset = UInt64(fields[2], radix: 16), start < limit, path.hasPrefix("/") else { continue }
            out.append(MemoryMapping(start: start, limit: limit, fileOffset: offset, path: String(path)))
        }
        return out.sorted { $0.start < $1.start }
    }

    /// This process's, read now.
    static func current() -> [MemoryMapping] {
        executable(inMaps: (try? String(contentsOfProcFile: "/proc/self/maps")) ?? "")
    }
}

private extension Substring {
    func trimmingLeadingSpaces() -> Substring { drop { $0 == " " } }
}
