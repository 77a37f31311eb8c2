/// One record of an answer this proxy gives itself.
public struct DNSRecord: Hashable, Sendable {
    public enum Data: Hashable, Sendable {
        case a(UInt32)
        case aaaa([UInt8])
        case cname(DNSName)
    }

    public let name: DNSName
    public let ttl: UInt32
    public let data: Data

    public init(name: DNSName, ttl: UInt32, data: Data) {
        self.name = name
        self.ttl = ttl
        self.data = data
    }
}

/// Writes answers to a query: the question echoed, the records with their names compressed, an OPT
/// record when the query had one, and TC set (the records dropped) when they do not fit the limit.
public enum DNSAnswer {
    /// What this proxy advertises in its own OPT record (RFC 9715's safe size for UDP).
    public static let ednsPayload: UInt16 = 1232

    /// `limit`: the client's UDP size (`query.udpLimit`), or 65,535 over TCP.
    public static func encode(answering query: DNSQuery, code: DNSResponseCode, authoritative: Bool,
                              records: [DNSRecord], limit: Int) -> [UInt8] {
        let full = write(query, code: code, authoritative: authoritative, records: records, truncated: false)
        if full.count <= limit || records.isEmpty { return full }
        return write(query, code: code, authoritative: authoritative, records: [], truncated: true)
    }

    /// An error answer to a message that could not be taken (`DNSQuery.Rejected`): the header
    /// alone, since its question may be what was malformed.
    public static func encode(rejecting rejected: DNSQuery.Rejected) -> [UInt8]? {
        guard let code = rejected.reply else { return nil }
        var w = Writer()
        w.u16(rejected.id)
        w.u16(0x8000 | (rejected.flags & 0x7900) | 0x0080 | UInt16(code.rawValue))
        for _ in 0..<4 { w.u16(0) }
        return w.bytes
    }

    private static func write(_ query: DNSQuery, code: DNSResponseCode, authoritative: Bool, records: [DNSRecord],
                              truncated: Bool) -> [UInt8] {
        var w = Writer()
        w.u16(query.id)
        // QR, the opcode and RD and CD as asked, AA when ours, TC, RA always.
        var flags: UInt16 = 0x8000 | (query.flags & 0x7910) | 0x0080 | UInt16(code.rawValue)
        if authoritative { flags |= 0x0400 }
        if truncated { flags |= 0x0200 }
        w.u16(flags)
        w.u16(1)
        w.u16(UInt16(records.count))
        w.u16(0)
        w.u16(query.ednsPayload == nil ? 0 : 1)
        w.name(query.name)
        w.u16(query.type)
        w.u16(query.qclass)
        for r in records {
            w.name(r.name)
            switch r.data {
            case let .a(v4):
                w.u16(DNSType.a); w.u16(1); w.u32(r.ttl); w.u16(4); w.u32(v4)
            case let .aaaa(v6):
                w.u16(DNSType.aaaa); w.u16(1); w.u32(r.ttl); w.u16(16); w.bytes += v6
            case let .cname(target):
                w.u16(DNSType.cname); w.u16(1); w.u32(r.ttl)
                let lengthAt = w.bytes.count
                w.u16(0)
                w.name(target)
                let length = w.bytes.count - lengthAt - 2
                w.bytes[lengthAt] = UInt8(length >> 8)
                w.bytes[lengthAt + 1] = UInt8(length & 0xff)
            }
        }
        if query.ednsPayload != nil {
            // OPT: root name, type 41, class = our payload size, extended code and version 0, no options.
            w.bytes.append(0)
            w.u16(DNSType.opt); w.u16(ednsPayload); w.u32(0); w.u16(0)
        }
        return w.bytes
    }

    /// Appends fields, compressing each name against the names already written (RFC 1035 4.1.4).
    struct Writer {
        var bytes: [UInt8] = []
        /// Names written in full, and where each of their labels starts: a later name whose tail
        /// equals one of their tails (ignoring case) points there. An answer holds a few names, so
        /// a scan beats hashing.
        private var written: [(name: DNSName, offsets: [Int])] = []

        init() { bytes.reserveCapacity(128) }

        mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
        mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xffff)) }

        mutating func name(_ name: DNSName) {
            var offsets: [Int] = []
            for i in name.labels.indices {
                if let offset = earlier(name, from: i) {
                    u16(0xc000 | UInt16(offset))
                    if !offsets.isEmpty { written.append((name, offsets)) }
                    return
                }
                offsets.append(bytes.count < 0x3fff ? bytes.count : -1)
                bytes.append(UInt8(name.labels[i].count))
                bytes += name.labels[i]
            }
            bytes.append(0)
            if !offsets.isEmpty { written.append((name, offsets)) }
        }

        /// Where `name`'s labels from `start` on were written already, if they were.
        private func earlier(_ name: DNSName, from start: Int) -> Int? {
            let tail = name.labels.count - start
            for (other, offsets) in written {
                let j = other.labels.count - tail
                guard j >= 0, j < offsets.count, offsets[j] >= 0 else { continue }
                if DNSName.sameLabels(name.labels[start...], other.labels[j...]) { return offsets[j] }
            }
            return nil
        }
    }
}
