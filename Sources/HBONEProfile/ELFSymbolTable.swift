import Glibc

/// The function symbols and GNU build ID of one ELF64 little-endian file, read with `pread` (only
/// the section headers and the symbol and string tables, never the whole file). A file that is not
/// such an ELF, or whose tables point outside it, gives an empty table: the profile then names its
/// addresses by file and offset instead.
struct ELFSymbolTable {
    struct Symbol {
        var start: UInt64   // link-time address (add the load bias for a shared object or PIE)
        var size: UInt64
        var name: String
    }

    /// Sorted by `start`.
    private(set) var symbols: [Symbol] = []
    /// The NT_GNU_BUILD_ID note in hex, which lets pprof find the file that matches.
    private(set) var buildID: String?
    /// ET_DYN (a shared object or a position-independent executable): its symbols move with where
    /// it was loaded. ET_EXEC: they are absolute.
    private(set) var isRelocatable = true

    init(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var file = stat()
        guard fstat(fd, &file) == 0 else { return }
        let reader = Reader(fd: fd, size: UInt64(file.st_size))
        parse(reader)
    }

    /// The symbol holding link-time address `address`. A symbol of size 0 holds only its own address.
    func symbol(at address: UInt64) -> Symbol? {
        var low = 0, high = symbols.count
        while low < high {
            let mid = (low + high) / 2
            if symbols[mid].start <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let s = symbols[low - 1]
        return address < s.start + max(s.size, 1) ? s : nil
    }

    private struct Reader {
        let fd: Int32
        let size: UInt64

        func bytes(at offset: UInt64, count: UInt64) -> [UInt8]? {
            guard count <= size, offset <= size - count, count < 1 << 31 else { return nil }
            var out = [UInt8](repeating: 0, count: Int(count))
            var done = 0
            while done < out.count {
                let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return nil }
                done += n
            }
            return out
        }
    }

    private struct Section {
        var name: UInt32, type: UInt32, offset: UInt64, size: UInt64, link: UInt32, entrySize: UInt64
    }

    private static let symtab: UInt32 = 2, note: UInt32 = 7, dynsym: UInt32 = 11
    private static let funcType: UInt8 = 2, ifuncType: UInt8 = 10

    private mutating func parse(_ reader: Reader) {
        guard let header = reader.bytes(at: 0, count: 64), header[0..<4].elementsEqual([0x7f, 0x45, 0x4c, 0x46]),
              header[4] == 2, header[5] == 1 else { return }   // ELFCLASS64, little-endian
        isRelocatable = header.u16(0x10) != 2                  // ET_EXEC
        let sectionsAt = header.u64(0x28), entrySize = UInt64(header.u16(0x3a)), count = UInt64(header.u16(0x3c))
        guard entrySize >= 64, count > 0, count < 65_536,
              let table = reader.bytes(at: sectionsAt, count: entrySize * count) else { return }
        let sections = (0..<Int(count)).map { i -> Section in
            let b = Int(entrySize) * i
            return Section(name: table.u32(b), type: table.u32(b + 4), offset: table.u64(b + 24), size: table.u64(b + 32),
                           link: table.u32(b + 40), entrySize: table.u64(b + 56))
        }
        for s in sections where s.type == Self.note && s.size < 1 << 16 {
            if let notes = reader.bytes(at: s.offset, count: s.size), let id = Self.buildID(in: notes) { buildID = id }
        }
        // The full table when the file has one (not stripped), else the dynamic symbols.
        let chosen = sections.first { $0.type == Self.symtab } ?? sections.first { $0.type == Self.dynsym }
        guard let chosen, chosen.entrySize >= 24, Int(chosen.link) < sections.count, chosen.size < 1 << 30,
              let entries = reader.bytes(at: chosen.offset, count: chosen.size) else { return }
        let strings = sections[Int(chosen.link)]
        guard strings.size < 1 << 30, let names = reader.bytes(at: strings.offset, count: strings.size) else { return }
        var found: [Symbol] = []
        for i in 0..<Int(chosen.size / chosen.entrySize) {
            let b = i * Int(chosen.entrySize)
            let type = entries[b + 4] & 0xf
            let value = entries.u64(b + 8)
            guard type == Self.funcType || type == Self.ifuncType, value != 0 else { continue }
            let nameAt = Int(entries.u32(b))
            guard nameAt < names.count else { continue }
            let end = names[nameAt...].firstIndex(of: 0) ?? names.count
            found.append(Symbol(start: value, size: entries.u64(b + 16), name: String(decoding: names[nameAt..<end], as: UTF8.self)))
        }
        // Aliases share an address: keep the first name seen, deterministically.
        found.sort { ($0.start, $0.name) < ($1.start, $1.name) }
        symbols.reserveCapacity(found.count)
        for s in found where symbols.last?.start != s.start { symbols.append(s) }
    }

    /// The GNU build ID among ELF notes (namesz, descsz, type, name, desc; each padded to 4 bytes).
    static func buildID(in notes: [UInt8]) -> String? {
        var at = 0
        while at + 12 <= notes.count {
            let nameSize = Int(notes.u32(at)), descSize = Int(notes.u32(at + 4)), type = notes.u32(at + 8)
            let nameAt = at + 12, descAt = nameAt + (nameSize + 3) & ~3
            guard nameSize < 1 << 16, descSize < 1 << 16, descAt + descSize <= notes.count else { return nil }
            if type == 3, nameSize == 4, notes[nameAt..<nameAt + 4].elementsEqual(Array("GNU\0".utf8)) {
                return notes[descAt..<descAt + descSize].map { String($0, radix: 16).leftPadded(2) }.joined()
            }
            at = descAt + (descSize + 3) & ~3
        }
        return nil
    }
}

private extension Array where Element == UInt8 {
    func u16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[at + $1]) << (8 * $1) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(self[at + $1]) << (8 * $1) } }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
