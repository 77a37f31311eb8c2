import COpenSSL

/// Objects of one kind out of PEM text.
enum PEMReader {
    /// Every object `read` takes off the text, in order (OpenSSL's PEM readers skip blocks of other
    /// kinds). Throws, with `code`, when a block is damaged: what was read up to it would pass
    /// for all there is.
    static func readAll<T>(_ pem: [UInt8], code: String, _ read: (OpaquePointer) -> T?) throws(TLSError) -> [T] {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        var items: [T] = []
        let ok: Bool = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return false }
            defer { BIO_free(bio) }
            while let item = read(bio) { items.append(item) }
            return true
        }
        // Reading stops with a "no start line" entry at the end of the input; that one is expected.
        let errors = OpenSSLErrors.drainEntries().filter { !($0.library == ERR_LIB_PEM && $0.reason == PEM_R_NO_START_LINE) }.map(\.text)
        guard ok else { throw TLSError(code: code, reason: "cannot allocate BIO") }
        if !errors.isEmpty { throw TLSError(code: code, reason: "damaged PEM: \(errors.joined(separator: "; "))") }
        return items
    }
}
