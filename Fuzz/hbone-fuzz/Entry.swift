#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry point (built with `-sanitize=fuzzer`, see scripts/fuzz.sh); the target is
/// named by HBONE_FUZZ_TARGET.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    FuzzEntry.target(bytes)
    return 0
}

enum FuzzEntry {
    static let target: @Sendable (UnsafeRawBufferPointer) -> Void = {
        let name = getenv("HBONE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = FuzzTargets.all[name] else {
            print("HBONE_FUZZ_TARGET must be one of: \(FuzzTargets.all.keys.sorted().joined(separator: ", "))")
            exit(2)
        }
        return target
    }()
}

#if HBONE_FUZZING
/// SwiftPM links an executable with `main` aliased to `<module>_main`; here that is libFuzzer's
/// driver over `fuzzOneInput` (libFuzzer's own main stays out of the link).
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("hbone_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return llvmFuzzerRunDriver(&count, &vector) { data, size in fuzzOneInput(data, size) }
}
#else
/// Without libFuzzer: replays inputs (files, or every file in directories) through one target,
/// so CI runs the committed corpus as a regression test on a normal build.
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTargets.all[name] else {
            print("usage: hbone-fuzz TARGET [FILE|DIR]...   targets: \(FuzzTargets.all.keys.sorted().joined(separator: " "))")
            exit(2)
        }
        var count = 0
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            let files = isDir.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                data.withUnsafeBytes { target($0) }
                count += 1
            }
        }
        print("\(name): \(count) inputs replayed, none failed")
    }
}
#endif

import Foundation
