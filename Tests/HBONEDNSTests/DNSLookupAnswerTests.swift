import Testing
@testable import HBONEDNS

/// Upstream answers built byte by byte here (RFC 1035's layout), not by the code under test.
struct Response {
    var id: UInt16 = 0
    var flags: UInt16 = 0x8180
    var question: String
    var qtype: UInt16 = 1
    var answers: [[UInt8]] = []
    var authority: [[UInt8]] = []

    static func name(_ text: String) -> [UInt8] {
        var b: [UInt8] = []
        for label in text.split(separator: ".") { b.append(UInt8(label.utf8.count)); b += Array(label.utf8) }
        return b + [0]
    }

    static func record(_ owner: [UInt8], type: UInt16, ttl: UInt32, rclass: UInt16 = 1, _ rdata: [UInt8]) -> [UInt8] {
        owner + [UInt8(type >> 8), UInt8(type & 0xff), UInt8(rclass >> 8), UInt8(rclass & 0xff),
                 UInt8(ttl >> 24), UInt8((ttl >> 16) & 0xff), UInt8((ttl >> 8) & 0xff), UInt8(ttl & 0xff),
                 UInt8(rdata.count >> 8), UInt8(rdata.count & 0xff)] + rdata
    }

    static func a(_ owner: String, _ ip: [UInt8], ttl: UInt32 = 60) -> [UInt8] { record(name(owner), type: 1, ttl: ttl, ip) }
    static func cname(_ owner: String, _ target: String, ttl: UInt32 = 60) -> [UInt8] { record(name(owner), type: 5, ttl: ttl, name(target)) }
    static func soa(ttl: UInt32, minimum: UInt32) -> [UInt8] {
        let fields: [UInt32] = [1, 3600, 600, 86400, minimum]
        return record(name("example.test"), type: 6, ttl: ttl,
                      name("ns.example.test") + name("hostmaster.example.test") + fields.flatMap { [UInt8($0 >> 24), UInt8(($0 >> 16) & 0xff), UInt8(($0 >> 8) & 0xff), UInt8($0 & 0xff)] })
    }

    var bytes: [UInt8] {
        var b: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), UInt8(flags >> 8), UInt8(flags & 0xff), 0, 1,
                          0, UInt8(answers.count), 0, UInt8(authority.count), 0, 0]
        b += Self.name(question) + [UInt8(qtype >> 8), UInt8(qtype & 0xff), 0, 1]
        for r in answers + authority { b += r }
        return b
    }
}

@Suite struct DNSLookupAnswerTests {
    let query = DNSQuery(asking: DNSName("api.example.test")!, type: DNSType.a)

    func read(_ r: Response) -> DNSLookupAnswer { DNSLookupAnswer(parsing: r.bytes, for: query) }

    @Test func ownQueriesAreOrdinaryQueriesWithAnOPTRecord() throws {
        let parsed = try DNSQuery(parsing: query.message)
        #expect(parsed.name == query.name && parsed.type == DNSType.a && parsed.qclass == 1 && parsed.recursionDesired)
        #expect(parsed.ednsPayload == DNSAnswer.ednsPayload)
        #expect(query.message == queryBytes(id: 0, name: "api.example.test", edns: DNSAnswer.ednsPayload))
    }

    @Test func addressesAreReadWithTheLeastTTL() {
        let r = Response(question: "api.example.test", answers: [Response.a("api.example.test", [10, 0, 0, 1], ttl: 60),
                                                                 Response.a("API.example.test", [10, 0, 0, 2], ttl: 20)])
        #expect(read(r) == DNSLookupAnswer(outcome: .addresses([[10, 0, 0, 1], [10, 0, 0, 2]]), ttl: 20))
    }

    @Test func aCNAMEChainIsFollowedAndRecordsAboutOtherNamesIgnored() {
        let r = Response(question: "api.example.test", answers: [
            Response.a("other.example.test", [6, 6, 6, 6]),                        // not on the chain
            Response.cname("api.example.test", "edge.cdn.test", ttl: 300),
            Response.cname("edge.cdn.test", "pop1.cdn.test", ttl: 30),
            Response.record(Response.name("pop1.cdn.test"), type: 1, ttl: 60, rclass: 3, [7, 7, 7, 7]),   // class CH
            Response.a("pop1.cdn.test", [192, 0, 2, 7], ttl: 120),
        ])
        #expect(read(r) == DNSLookupAnswer(outcome: .addresses([[192, 0, 2, 7]]), ttl: 30))
    }

    @Test func noAddressesKeepTheSOAsNegativeTTL() {
        // NXDOMAIN: the lesser of the SOA record's TTL and its MINIMUM (RFC 2308 5).
        var nx = Response(flags: 0x8183, question: "api.example.test", authority: [Response.soa(ttl: 900, minimum: 45)])
        #expect(read(nx) == DNSLookupAnswer(outcome: .noAddresses, ttl: 45, nameDoesNotExist: true))
        nx.authority = []
        #expect(read(nx) == DNSLookupAnswer(outcome: .noAddresses, ttl: nil, nameDoesNotExist: true))
        // NODATA: a chain that ends without an address of the type asked.
        let nodata = Response(question: "api.example.test", answers: [Response.cname("api.example.test", "v6.example.test")],
                              authority: [Response.soa(ttl: 20, minimum: 600)])
        #expect(read(nodata) == DNSLookupAnswer(outcome: .noAddresses, ttl: 20))
    }

    @Test func errorsTruncationAndBrokenMessagesGiveNoAddress() {
        #expect(read(Response(flags: 0x8182, question: "api.example.test")).outcome == .failed("SERVFAIL"))
        #expect(read(Response(flags: 0x8185, question: "api.example.test")).outcome == .failed("REFUSED"))
        #expect(read(Response(flags: 0x8380, question: "api.example.test")).truncated)
        // An A record of 5 bytes, a record cut short, a chain that loops.
        let five = Response(question: "api.example.test", answers: [Response.record(Response.name("api.example.test"), type: 1, ttl: 1, [1, 2, 3, 4, 5])])
        #expect(read(five).outcome == .failed("a record is cut short or malformed"))
        let cut = Array(Response(question: "api.example.test", answers: [Response.a("api.example.test", [1, 2, 3, 4])]).bytes.dropLast(2))
        #expect(DNSLookupAnswer(parsing: cut, for: query).outcome == .failed("a record is cut short or malformed"))
        let loop = Response(question: "api.example.test", answers: [Response.cname("api.example.test", "b.test"), Response.cname("b.test", "api.example.test")])
        #expect(read(loop).outcome == .failed("a CNAME chain longer than \(DNSLookupAnswer.maxChain)"))
        #expect(DNSLookupAnswer(parsing: [0, 0, 0x81], for: query).outcome == .failed("shorter than a header"))
    }

    @Test func ttlsWithTheTopBitSetAreZeroAndAddressesAreCapped() {
        let many = (0..<40).map { Response.a("api.example.test", [10, 0, 0, UInt8($0)], ttl: 0x8000_0010) }
        let r = read(Response(question: "api.example.test", answers: many))
        guard case let .addresses(list) = r.outcome else { Issue.record("\(r)"); return }
        #expect(list.count == DNSLookupAnswer.maxAddresses && list[0] == [10, 0, 0, 0] && r.ttl == 0)
    }

    @Test func aaaaRecordsAnswerAnAAAAQuery() {
        let q6 = DNSQuery(asking: DNSName("api.example.test")!, type: DNSType.aaaa)
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        let r = Response(question: "api.example.test", qtype: 28, answers: [
            Response.a("api.example.test", [10, 0, 0, 1]),                                         // another type: ignored
            Response.record(Response.name("api.example.test"), type: 28, ttl: 50, v6),
        ])
        #expect(DNSLookupAnswer(parsing: r.bytes, for: q6) == DNSLookupAnswer(outcome: .addresses([v6]), ttl: 50))
    }
}
