import Testing
@testable import HBONECore

@Suite struct AddressParsingTests {
    @Test(arguments: [
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("127.0.0.20:8080", "127.0.0.20:8080"),
        ("[::1]:15008", "[::1]:15008"),
        ("[fd00::a:1]:443", "[fd00::a:1]:443"),
        ("1.2.3.4:65535", "1.2.3.4:65535"),
    ])
    func validAuthorities(text: String, printed: String) {
        #expect(SocketAddress(text)?.description == printed)
    }

    @Test(arguments: [
        ("", SocketAddress.ParseError.empty),
        ("10.0.0.1", .missingPort),
        ("10.0.0.1:", .badPort),
        ("10.0.0.1:0", .badPort),
        ("10.0.0.1:65536", .badPort),
        ("10.0.0.1:080", .badPort),
        ("10.0.0.1:+80", .badPort),
        ("10.0.0.1:8o", .badPort),
        ("example.com:80", .badAddress),
        ("10.0.0.256:80", .badAddress),
        ("010.0.0.1:80", .badAddress),
        ("::1:80", .unbracketedIPv6),
        ("[::1]", .missingPort),
        ("[::1]80", .missingPort),
        ("[10.0.0.1]:80", .badAddress),
        ("[fe80::1%eth0]:80", .badAddress),
        ("10.0.0.1:80 ", .badPort),
        (String(repeating: "1", count: 100), .tooLong),
    ])
    func malformedAuthorities(text: String, error: SocketAddress.ParseError) {
        guard case let .failure(got) = SocketAddress.parse(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(got == error, "\(text)")
    }

    @Test func cidrContainment() {
        let v4 = CIDR("10.1.0.0/16")!
        #expect(v4.contains(IPAddress("10.1.255.3")!))
        #expect(!v4.contains(IPAddress("10.2.0.1")!))
        #expect(!v4.contains(IPAddress("::1")!))
        let v6 = CIDR("fd00:1::/32")!
        #expect(v6.contains(IPAddress("fd00:1:ffff::9")!))
        #expect(!v6.contains(IPAddress("fd00:2::1")!))
        #expect(CIDR("1.2.3.4")!.prefixLength == 32)
        #expect(CIDR("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("10.0.0.0/") == nil)
        #expect(CIDR("nonsense/8") == nil)
    }

    @Test func byteQueueConsumesInOrder() {
        var q = ByteQueue()
        q.append([1, 2, 3, 4, 5])
        _ = q.consume { $0.count >= 2 ? 2 : 0 }
        q.append([6])
        #expect(Array(q.bytes) == [3, 4, 5, 6])
        #expect(q.read(max: 10) == [3, 4, 5, 6])
        #expect(q.isEmpty)
    }

    @Test func logValuesAreQuoted() {
        #expect(Log.logfmtValue("plain") == "plain")
        #expect(Log.logfmtValue("has space") == "\"has space\"")
        #expect(Log.jsonString("a\"b\n") == "\"a\\\"b\\n\"")
    }
}
