import ArgumentParser
import Foundation
import Histogram

/// One figure of a run, beside the baseline measured in the same run. `scripts/bench.sh` collects
/// these (one JSON object per line) into `bench-results/<UTC>.json`, a Markdown table and a chart.
struct Figure: Codable {
    var benchmark: String
    var name: String
    var value: Double
    var unit: String
    var baselineName: String?
    var baseline: Double?
    /// value ÷ baseline; `higherIsBetter` says which side of 1 is good.
    var ratio: Double?
    var higherIsBetter: Bool
    /// The goal from the benchmark issue, as text ("≥ 1300"); never asserted.
    var target: String?
    var met: Bool?
    var command: String

    init(_ benchmark: String, _ name: String, value: Double, unit: String, baseline: (String, Double)? = nil,
         higherIsBetter: Bool, target: (String, Bool)? = nil) {
        self.benchmark = benchmark
        self.name = name
        self.value = value
        self.unit = unit
        self.baselineName = baseline?.0
        self.baseline = baseline?.1
        self.ratio = baseline.flatMap { $0.1 > 0 ? value / $0.1 : nil }
        self.higherIsBetter = higherIsBetter
        self.target = target?.0
        self.met = target?.1
        self.command = commandLine
    }
}

/// `--json FILE`: append every figure of this command to FILE as JSON lines.
struct ReportOptions: ParsableArguments {
    @Option(help: "Append the figures as JSON lines to this file.") var json: String?

    func emit(_ figures: [Figure]) throws {
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for f in figures {
            lines.append(try encoder.encode(f))
            lines.append(0x0a)
        }
        if !FileManager.default.fileExists(atPath: json) {
            _ = FileManager.default.createFile(atPath: json, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: json) else { throw BenchError("cannot write \(json)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: lines)
    }
}

func shellQuoted(_ s: String) -> String {
    let safe = s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_./:=,@%+".unicodeScalars.contains($0) }
    return safe && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// This run's command, quoted for a shell: printed under every figure and stored with it.
let commandLine = CommandLine.arguments.map(shellQuoted).joined(separator: " ")

func printCommand() { print("command: \(commandLine)") }

/// Latencies in nanoseconds, three significant digits (HdrHistogram).
struct LatencyRecorder {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    mutating func record(nanoseconds: UInt64) { _ = histogram.record(max(1, nanoseconds)) }
    mutating func merge(_ other: LatencyRecorder) { histogram.add(other.histogram) }
    var count: Int { Int(histogram.totalCount) }
    func micros(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
    func millis(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1_000_000 }
}
