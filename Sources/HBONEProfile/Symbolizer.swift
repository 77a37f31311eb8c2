import CHBONEPosix
import Glibc

/// Names code addresses of this process: the mapping each falls in, and the function, from the
/// file's ELF symbol table (hbone's own functions, when the binary keeps `.symtab`), else the
/// loader's dynamic symbols (`dladdr`: libssl, libcrypto, libc), else none (pprof then shows the
/// file and offset). Swift names are demangled. Each file's table is read once.
struct Symbolizer {
    struct Function: Hashable {
        var name: String
        var systemName: String
    }

    let mappings: [MemoryMapping]
    private var tables: [String: ELFSymbolTable] = [:]

    init(mappings: [MemoryMapping] = MemoryMapping.current()) {
        self.mappings = mappings
    }

    /// The index in `mappings` of the one holding `address`.
    func mappingIndex(of address: UInt64) -> Int? {
        var low = 0, high = mappings.count
        while low < high {
            let mid = (low + high) / 2
            if mappings[mid].start <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0, address < mappings[low - 1].limit else { return nil }
        return low - 1
    }

    /// The build ID of the file behind mapping `index`, when it has one.
    mutating func buildID(ofMapping index: Int) -> String? { table(mappings[index].path).buildID }

    /// The function holding `address` (an instruction's address: callers pass a return address
    /// minus one, so a call that ends its function is not named after the next one).
    mutating func function(at address: UInt64) -> Function? {
        var base: UInt64 = 0
        var dynamicName: UnsafePointer<CChar>?
        let found = chbone_dladdr(UnsafeRawPointer(bitPattern: UInt(address)), &base, &dynamicName) != 0
        if let index = mappingIndex(of: address) {
            let t = table(mappings[index].path)
            // A shared object or PIE is loaded at a bias (where the loader put its first byte).
            let bias: UInt64 = t.isRelocatable ? (found ? base : mappings[index].start &- mappings[index].fileOffset) : 0
            if let s = t.symbol(at: address &- bias) { return Function(name: Self.demangle(s.name), systemName: s.name) }
        }
        if found, let name = dynamicName {
            let raw = String(cString: name)
            return Function(name: Self.demangle(raw), systemName: raw)
        }
        return nil
    }

    private mutating func table(_ path: String) -> ELFSymbolTable {
        if let t = tables[path] { return t }
        // A binary replaced on disk since it started still has its inode behind /proc/self/exe.
        let readable = path.hasSuffix(" (deleted)") ? "/proc/self/exe" : path
        let t = ELFSymbolTable(path: readable)
        tables[path] = t
        return t
    }

    /// A Swift symbol as source spells it; any other name unchanged.
    static func demangle(_ name: String) -> String {
        guard name.hasPrefix("$s") || name.hasPrefix("_$s") || name.hasPrefix("$S") || name.hasPrefix("_T0") else { return name }
        return name.withCString { raw in
            guard let out = _swift_demangle(raw, strlen(raw), nil, nil, 0) else { return name }
            defer { free(out) }
            return String(cString: out)
        }
    }
}

/// The Swift runtime's demangler (exported by libswiftCore, also when linked statically); returns
/// a malloc'd string or nil.
@_silgen_name("swift_demangle")
private func _swift_demangle(_ mangledName: UnsafePointer<CChar>, _ length: Int, _ outputBuffer: UnsafeMutablePointer<CChar>?,
                             _ outputBufferSize: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
