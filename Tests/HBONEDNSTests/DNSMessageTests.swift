import Testing
@testable import HBONEDNS

/// Queries built byte by byte here (as RFC 1035 lays them out), not by the code under test.
func queryBytes(id: UInt16 = 0x1234, flags: UInt16 = 0x0100, name: String, type: UInt16 = 1, qclass: UInt16 = 1,
                edns: UInt16? = nil) -> [UInt8] {
    var b: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), UInt8(flags >> 8), UInt8(flags & 0xff), 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
    for label in name.split(separator: ".") { b.append(UInt8(label.utf8.count)); b += Array(label.utf8) }
    b += [0, UInt8(type >> 8), UInt8(type & 0xff), UInt8(qclass >> 8), UInt8(qclass & 0xff)]
    if let edns { b += [0, 0, 41, UInt8(edns >> 8), UInt8(edns & 0xff), 0, 0, 0, 0, 0, 0] }
    return b
}

@Suite struct DNSMessageTests {
    @Test func aQueryIsReadWithItsEDNSSize() throws {
        let q = try DNSQuery(parsing: queryBytes(name: "Ledger.Payments.svc.cluster.local", type: 28, edns: 4096))
        #expect(q.id == 0x1234 && q.type == 28 && q.qclass == 1 && q.recursionDesired)
        #expect(q.name.key == "ledger.payments.svc.cluster.local")
        #expect(q.name.description == "Ledger.Payments.svc.cluster.local.")
        #expect(q.ednsPayload == 4096 && q.udpLimit == 4096)
        #expect(try DNSQuery(parsing: queryBytes(name: "a.b")).udpLimit == 512)
    }

    @Test(arguments: [
        ([UInt8](repeating: 0, count: 11), nil as DNSResponseCode?),                        // no whole header
        (queryBytes(flags: 0x8100, name: "a.b"), nil),                                     // a response: dropped
        (queryBytes(flags: 0x2900, name: "a.b"), .notImplemented),                         // opcode UPDATE
        (Array(queryBytes(name: "a.b").prefix(16)), .formatError),                          // the question cut short
        ([0x12, 0x34, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0], .formatError),                        // two questions
        ([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1], .formatError),  // a pointer to itself
        ([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1], .formatError),   // an extended label type
        (queryBytes(name: "a.b") + [0], .noError),                                          // trailing byte: ignored
    ])
    func brokenMessagesAreRejectedWithTheirCode(bytes: [UInt8], code: DNSResponseCode?) {
        do {
            _ = try DNSQuery(parsing: bytes)
            #expect(code == .noError)
        } catch {
            #expect(error.reply == code, "\(error.reason)")
            if bytes.count >= 12, let answer = DNSAnswer.encode(rejecting: error) {
                #expect(answer.count == 12 && answer[0] == 0x12 && answer[1] == 0x34 && answer[2] & 0x80 != 0)
                #expect(answer[3] & 0x0f == code!.rawValue)
            }
        }
    }

    @Test func aNameLongerThan255BytesIsRefused() {
        let long = (0..<5).map { _ in String(repeating: "a", count: 60) }.joined(separator: ".")
        #expect(DNSName(long) == nil)
        #expect(throws: DNSQuery.Rejected.self) { try DNSQuery(parsing: queryBytes(name: long)) }
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
    }

    @Test func namesWithOtherBytesHaveNoKey() {
        #expect(DNSName(labels: [Array("a b".utf8), Array("com".utf8)])?.key == nil)
        #expect(DNSName(labels: [[0x41, 0x2e], Array("com".utf8)])?.description == "A\\046.com.")
        #expect(DNSName("*.Example.com")?.key == "*.example.com")
    }

    @Test func anAnswerEchoesTheQuestionAndCompressesNames() throws {
        let q = try DNSQuery(parsing: queryBytes(id: 7, flags: 0x0110, name: "LEDGER.payments", type: 1, edns: 1400))
        let target = DNSName("ledger.payments.svc.cluster.local")!
        let records = [DNSRecord(name: q.name, ttl: 30, data: .cname(target)),
                       DNSRecord(name: target, ttl: 30, data: .a(0x0a600001)),
                       DNSRecord(name: target, ttl: 30, data: .a(0x0a600002))]
        let a = DNSAnswer.encode(answering: q, code: .noError, authoritative: true, records: records, limit: q.udpLimit)
        #expect(a[0] == 0 && a[1] == 7)
        // QR, AA, RD and CD echoed, RA; NOERROR.
        #expect(a[2] == 0x85 && a[3] == 0x90)
        #expect(Array(a[4..<12]) == [0, 1, 0, 3, 0, 0, 0, 1])
        // The question as asked (case kept), then the CNAME's owner as a pointer to it.
        let question = queryBytes(id: 7, flags: 0x0110, name: "LEDGER.payments", type: 1)[12...]
        #expect(Array(a[12..<(12 + question.count)]) == Array(question))
        let afterQuestion = 12 + question.count
        #expect(a[afterQuestion] == 0xc0 && a[afterQuestion + 1] == 12)
        // The A records' owner is the CNAME's target, written once and then pointed to.
        #expect(a.count < 12 + question.count + 3 * 16 + 40 + 11)
        var r = DNSReader(a, at: afterQuestion + 12)   // the CNAME's rdata
        #expect(r.name() == target)
        var owner = DNSReader(a, at: r.at)
        #expect(owner.name() == target)
    }

    @Test func anAnswerTooBigForUDPIsTruncated() throws {
        let q = try DNSQuery(parsing: queryBytes(name: "many.example.com"))
        let records = (0..<40).map { DNSRecord(name: q.name, ttl: 30, data: .aaaa([UInt8](repeating: UInt8($0), count: 16))) }
        let udp = DNSAnswer.encode(answering: q, code: .noError, authoritative: true, records: records, limit: q.udpLimit)
        #expect(udp[2] & 0x02 != 0 && udp[6] == 0 && udp[7] == 0 && udp.count <= 512)
        let tcp = DNSAnswer.encode(answering: q, code: .noError, authoritative: true, records: records, limit: 65_535)
        #expect(tcp[2] & 0x02 == 0 && tcp[7] == 40)
    }

    @Test func anUpstreamAnswerIsTakenOnlyWhenItAnswersTheQuery() throws {
        let q = try DNSQuery(parsing: queryBytes(id: 0x0101, name: "example.com"))
        var sent = q.message(withID: 0xbeef)
        #expect(sent[0] == 0xbe && sent[1] == 0xef && Array(sent[2...]) == Array(q.message[2...]))
        sent[2] |= 0x80
        #expect(q.isAnswered(by: sent, id: 0xbeef))
        #expect(!q.isAnswered(by: sent, id: 0xbeee))                                    // another ID
        #expect(!q.isAnswered(by: q.message(withID: 0xbeef), id: 0xbeef))               // not a response
        var other = try DNSQuery(parsing: queryBytes(id: 0xbeef, name: "example.org")).message
        other[2] |= 0x80
        #expect(!q.isAnswered(by: other, id: 0xbeef))                                   // another question
        var upper = try DNSQuery(parsing: queryBytes(id: 0xbeef, name: "EXAMPLE.com")).message
        upper[2] |= 0x80
        #expect(q.isAnswered(by: upper, id: 0xbeef))                                    // case is not a difference
        #expect(q.restoringID(upper)[0...1] == [0x01, 0x01])
    }
}
