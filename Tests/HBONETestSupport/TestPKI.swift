import Foundation

/// The repository root, found from this file's path.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Test PKI generated once per test process by `scripts/gen-test-pki.sh` (the openssl CLI).
public enum TestPKI {
    /// The first caller generates the PKI while the others wait. NSLock (a pthread mutex) rather than
    /// Synchronization.Mutex: ThreadSanitizer cannot see the futex wait of a contended Mutex and
    /// reports a false race here (`scripts/test.sh --sanitize thread`).
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: String?

    /// The directory holding the generated PKI.
    public static var directory: String {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let out = NSTemporaryDirectory() + "hbone-test-pki-\(getpid())"
        let status = run(repositoryRoot + "/scripts/gen-test-pki.sh", [out])
        precondition(status == 0, "gen-test-pki.sh failed")
        cached = out
        return out
    }

    public static func path(_ relative: String) -> String { directory + "/" + relative }

    public static func bytes(_ relative: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: path(relative)) ?? Data())
    }
}

/// Runs a program to completion, output to this process's stderr. Returns the exit status.
@discardableResult
public func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    if let environment { process.environment = environment }
    process.standardOutput = FileHandle.standardError
    do { try process.run() } catch { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}
