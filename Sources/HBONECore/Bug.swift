import Atomics

/// Impossible states: an assertion in debug builds; in release a `BUG:` log line and a count.
public enum Bug {
    public static let count = ManagedAtomic<Int>(0)

    public static func report(_ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        let message = what()
        assertionFailure("BUG: \(message)", file: file, line: line)
        count.wrappingIncrement(ordering: .relaxed)
        log.error("BUG: \(message)", ["at": "\(file):\(line)"])
    }
}
