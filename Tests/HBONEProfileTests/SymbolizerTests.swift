import CHBONEPosix
import Foundation
import Testing
@testable import HBONEProfile

@Suite struct SymbolizerTests {
    @Test func namesAFunctionOfThisBinaryFromItsSymbolTable() {
        // A C function linked into the test binary: no dynamic symbol, only .symtab names it.
        let address = UInt64(UInt(bitPattern: unsafeBitCast(chbone_monotonic_ns as @convention(c) () -> UInt64, to: UnsafeRawPointer.self)))
        var symbolizer = Symbolizer()
        #expect(symbolizer.mappingIndex(of: address) != nil)
        #expect(symbolizer.function(at: address + 3)?.name == "chbone_monotonic_ns")
    }

    @Test func namesALibraryFunctionThroughTheLoader() {
        // libc's own symbol table is stripped: only its dynamic symbols name its code.
        let address = UInt64(UInt(bitPattern: unsafeBitCast(getpid as @convention(c) () -> pid_t, to: UnsafeRawPointer.self)))
        var symbolizer = Symbolizer()
        let index = symbolizer.mappingIndex(of: address)
        #expect(index.map { symbolizer.mappings[$0].path.contains("libc.so") } == true)
        #expect(symbolizer.function(at: address + 1)?.name.contains("getpid") == true)
    }

    @Test func demanglesSwiftNames() {
        #expect(Symbolizer.demangle("$sSi") == "Swift.Int")
        #expect(Symbolizer.demangle("SSL_do_handshake") == "SSL_do_handshake")
        // Not a valid mangling: left as it was.
        #expect(Symbolizer.demangle("$s!!") == "$s!!")
    }

    @Test func executableMappingsFromProcMaps() {
        let maps = """
        55d0c0000000-55d0c0100000 r--p 00000000 08:01 1234   /usr/local/bin/hbone
        55d0c0100000-55d0c0900000 r-xp 00100000 08:01 1234   /usr/local/bin/hbone
        7f00aa000000-7f00aa200000 r-xp 00040000 08:01 99     /usr/lib/x86_64-linux-gnu/libcrypto.so.3
        7f00bb000000-7f00bb001000 r-xp 00000000 00:00 0
        7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]
        garbage line
        7f00cc000000-7f00cc100000 r-xp 00000000 08:01 77     /opt/old/hbone (deleted)
        """
        let m = MemoryMapping.executable(inMaps: maps)
        #expect(m.map(\.path) == ["/usr/local/bin/hbone", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/opt/old/hbone (deleted)"])
        #expect(m.first == MemoryMapping(start: 0x55d0_c010_0000, limit: 0x55d0_c090_0000, fileOffset: 0x100000, path: "/usr/local/bin/hbone"))
        let s = Symbolizer(mappings: m)
        #expect(s.mappingIndex(of: 0x7f00_aa00_0010) == 1)
        #expect(s.mappingIndex(of: 0x7f00_aa20_0000) == nil)
        #expect(s.mappingIndex(of: 0x1000) == nil)
    }

    @Test func buildIDFromItsNote() {
        // namesz 4, descsz 3, NT_GNU_BUILD_ID, "GNU\0", the ID padded to 4 bytes; another note first.
        let other: [UInt8] = [4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0] + Array("GNU\0".utf8) + [9, 9, 9, 9]
        let id: [UInt8] = [4, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0] + Array("GNU\0".utf8) + [0xab, 0x01, 0xff, 0]
        #expect(ELFSymbolTable.buildID(in: other + id) == "ab01ff")
        #expect(ELFSymbolTable.buildID(in: Array(id.prefix(17))) == nil)
        #expect(ELFSymbolTable.buildID(in: [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 3, 0, 0, 0]) == nil)
    }

    @Test func thisBinaryHasABuildIDAndSortedSymbols() {
        let table = ELFSymbolTable(path: "/proc/self/exe")
        #expect((table.buildID?.count ?? 0) >= 16)
        #expect(table.symbols.count > 1000)
        #expect(zip(table.symbols, table.symbols.dropFirst()).allSatisfy { $0.start < $1.start })
    }

    /// Files that are not ELF, or an ELF cut short, give an empty table and nothing worse.
    @Test func damagedFilesGiveNoSymbols() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hbone-elf-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let exe = try Data(contentsOf: URL(fileURLWithPath: "/proc/self/exe"))
        var cases: [String: Data] = ["empty": Data(), "text": Data("not an elf\n".utf8), "head": exe.prefix(64),
                                     "cut": exe.prefix(exe.count / 2)]
        // Section headers pointing past the end of the file.
        var lying = exe.prefix(4096)
        lying.replaceSubrange(0x28..<0x30, with: [0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        cases["lying"] = lying
        for (name, bytes) in cases {
            let path = dir.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: path))
            #expect(ELFSymbolTable(path: path).symbols.isEmpty, "\(name)")
        }
        #expect(ELFSymbolTable(path: dir.appendingPathComponent("missing").path).symbols.isEmpty)
    }
}
