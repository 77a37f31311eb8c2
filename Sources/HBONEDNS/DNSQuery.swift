/// Record types and response codes this proxy names (RFC 1035, 3596, 6891).
public enum DNSType {
    public static let a: UInt16 = 1
    public static let cname: UInt16 = 5
    public static let soa: UInt16 = 6
    public static let aaaa: UInt16 = 28
    public static let opt: UInt16 = 41

    /// Lower case, as ztunnel's `request_query_type` label spells them.
    public static func name(_ type: UInt16) -> String {
        switch type {
        case a: "a"
        case 2: "ns"
        case cname: "cname"
        case soa: "soa"
        case 12: "ptr"
        case 15: "mx"
        case 16: "txt"
        case aaaa: "aaaa"
        case 33: "srv"
        case 65: "https"
        case 64: "svcb"
        case 255: "any"
        default: "unknown"
        }
    }
}

public enum DNSResponseCode: UInt8, Sendable {
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
}

/// One query as a client sent it: what is asked, and what the answer must echo. The message's
/// bytes stay as they came, so a query this proxy does not answer is forwarded unchanged but for
/// its ID.
public struct DNSQuery: Sendable {
    public let id: UInt16
    /// The header's flags word as sent (RD and CD are echoed in the answer).
    public let flags: UInt16
    public let name: DNSName
    public let type: UInt16
    public let qclass: UInt16
    /// The sender's EDNS UDP payload size (RFC 6891); nil without an OPT record.
    public let ednsPayload: UInt16?
    public let message: [UInt8]

    public var recursionDesired: Bool { flags & 0x0100 != 0 }

    /// A message that is not a query this proxy can take: `reply` is the code to answer with, or
    /// nil when the bytes are too broken to answer at all (no whole header, or a response).
    public struct Rejected: Error, Sendable, Equatable {
        public let id: UInt16
        public let flags: UInt16
        public let reply: DNSResponseCode?
        public let reason: String
    }

    /// Parses `message`, every length checked against the bytes there are.
    public init(parsing message: [UInt8]) throws(Rejected) {
        guard message.count >= 12 else { throw Rejected(id: 0, flags: 0, reply: nil, reason: "shorter than a header") }
        let id = UInt16(message[0]) << 8 | UInt16(message[1])
        let flags = UInt16(message[2]) << 8 | UInt16(message[3])
        func reject(_ code: DNSResponseCode?, _ reason: String) -> Rejected { Rejected(id: id, flags: flags, reply: code, reason: reason) }
        // A response sent as a request is dropped, never answered: answering would let two
        // resolvers bounce one message between them for ever.
        guard flags & 0x8000 == 0 else { throw reject(nil, "a response, not a query") }
        guard (flags >> 11) & 0xf == 0 else { throw reject(.notImplemented, "opcode \((flags >> 11) & 0xf) is not QUERY") }
        let qdcount = UInt16(message[4]) << 8 | UInt16(message[5])
        guard qdcount == 1 else { throw reject(.formatError, "\(qdcount) questions (one is asked at a time)") }
        var reader = DNSReader(message, at: 12)
        guard let name = reader.name(), let type = reader.u16(), let qclass = reader.u16() else {
            throw reject(.formatError, "the question is cut short or its name is malformed")
        }
        // The other sections: answers and authority are skipped; the additional section may hold
        // the OPT record, whose class is the sender's UDP payload size.
        let counts = (3..<6).map { i in Int(UInt16(message[2 * i]) << 8 | UInt16(message[2 * i + 1])) }
        var payload: UInt16?
        for section in 0..<3 {
            for _ in 0..<counts[section] {
                guard reader.name() != nil, let rtype = reader.u16(), let rclass = reader.u16(), reader.skip(4),
                      let length = reader.u16(), reader.skip(Int(length)) else {
                    throw reject(.formatError, "a record is cut short or malformed")
                }
                if section == 2 && rtype == DNSType.opt {
                    guard payload == nil else { throw reject(.formatError, "two OPT records") }
                    payload = rclass
                }
            }
        }
        self.id = id
        self.flags = flags
        self.name = name
        self.type = type
        self.qclass = qclass
        self.ednsPayload = payload
        self.message = message
    }

    /// A query of this proxy's own (a workload's hostname looked up): recursion desired, and an
    /// OPT record offering `DNSAnswer.ednsPayload`, so an ordinary answer fits one datagram.
    public init(asking name: DNSName, type: UInt16) {
        var w = DNSAnswer.Writer()
        w.u16(0)
        w.u16(0x0100)
        w.u16(1); w.u16(0); w.u16(0); w.u16(1)
        w.name(name)
        w.u16(type)
        w.u16(1)
        w.bytes.append(0)
        w.u16(DNSType.opt); w.u16(DNSAnswer.ednsPayload); w.u32(0); w.u16(0)
        id = 0
        flags = 0x0100
        self.name = name
        self.type = type
        qclass = 1
        ednsPayload = DNSAnswer.ednsPayload
        message = w.bytes
    }

    /// The largest answer the client takes over UDP (RFC 6891 6.2.5: at least 512).
    public var udpLimit: Int { max(512, Int(ednsPayload ?? 512)) }

    /// The query as sent, under another ID (forwarded upstream under an ID of the proxy's own).
    public func message(withID newID: UInt16) -> [UInt8] {
        var m = message
        m[0] = UInt8(newID >> 8)
        m[1] = UInt8(newID & 0xff)
        return m
    }

    /// Whether `response` answers this query sent as `id`: a response with that ID whose question
    /// is this one (name ignoring case, type, class). Anything else is not taken as the answer, so a
    /// forged or stray datagram cannot answer a client.
    public func isAnswered(by response: [UInt8], id sentID: UInt16) -> Bool {
        guard response.count >= 12, UInt16(response[0]) << 8 | UInt16(response[1]) == sentID, response[2] & 0x80 != 0,
              response[4] == 0, response[5] == 1 else { return false }
        var reader = DNSReader(response, at: 12)
        guard let n = reader.name(), let t = reader.u16(), let c = reader.u16() else { return false }
        return n.sameName(as: name) && t == type && c == qclass
    }

    /// `response` with this query's ID, to go back to the client.
    public func restoringID(_ response: [UInt8]) -> [UInt8] {
        var r = response
        r[0] = UInt8(id >> 8)
        r[1] = UInt8(id & 0xff)
        return r
    }
}

/// Reads a DNS message without ever reading past its end.
struct DNSReader {
    let bytes: [UInt8]
    var at: Int

    init(_ bytes: [UInt8], at: Int) {
        self.bytes = bytes
        self.at = at
    }

    mutating func u16() -> UInt16? {
        guard at + 2 <= bytes.count else { return nil }
        defer { at += 2 }
        return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
    }

    mutating func skip(_ n: Int) -> Bool {
        guard at + n <= bytes.count else { return false }
        at += n
        return true
    }

    /// A name at the cursor, following compression pointers backwards only (so a loop of pointers
    /// cannot run for ever), at most 255 bytes expanded.
    mutating func name() -> DNSName? {
        var labels: [[UInt8]] = []
        var cursor = at, jumped = false, total = 1
        while true {
            guard cursor < bytes.count else { return nil }
            let length = Int(bytes[cursor])
            switch length & 0xc0 {
            case 0x00:
                if length == 0 {
                    if !jumped { at = cursor + 1 }
                    return DNSName(labels: labels)
                }
                total += length + 1
                guard total <= DNSName.maxWire, cursor + 1 + length <= bytes.count else { return nil }
                labels.append(Array(bytes[(cursor + 1)..<(cursor + 1 + length)]))
                cursor += 1 + length
            case 0xc0:
                guard cursor + 1 < bytes.count else { return nil }
                let target = (length & 0x3f) << 8 | Int(bytes[cursor + 1])
                guard target < cursor else { return nil }
                if !jumped { at = cursor + 2 }
                jumped = true
                cursor = target
            default:
                return nil   // 0x40 and 0x80: extended label types, obsolete (RFC 6891 5)
            }
        }
    }
}
