#if canImport(Glibc)
import Glibc
#endif

extension String {
    /// A /proc file, read to its end (its size is 0 to stat).
    init(contentsOfProcFile path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ProcFileError() }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ProcFileError() }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

struct ProcFileError: Error {}
