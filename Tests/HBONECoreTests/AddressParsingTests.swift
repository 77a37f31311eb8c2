import Testing
@testable import HBONECore
#if canImport(Glibc)
import Glibc
#endif

@Suite struct AddressParsingTests {
    /// IPv4 is parsed from the bytes, not by inet_pton: both must accept exactly the same strings
    /// and agree on the value (edge cases, then every string of up to 8 characters over a small
    /// alphabet, then random longer ones).
    @Test func dottedQuadAgreesWithInetPton() {
        func pton(_ s: String) -> UInt32? {
            var raw = in_addr()
            return inet_pton(AF_INET, s, &raw) == 1 ? UInt32(bigEndian: raw.s_addr) : nil
        }
        func ours(_ s: String) -> UInt32? {
            guard let ip = IPAddress(s), case let .v4(v) = ip, !s.contains(":") else { return nil }
            return v
        }
        var cases = ["0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3.04", "1.2.3.00", "256.1.1.1", "1.2.3.256",
                     "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", " 1.2.3.4", "1.2.3.4 ", "1.2.3.-1", "1.2.3.4a",
                     "1234.1.1.1", "0x1.2.3.4", "١.٢.٣.٤", "1.2.3.999", "10.0.0.1", "127.0.0.1"]
        let alphabet = Array("0129.5")
        var frontier = [""]
        for _ in 0..<7 {
            frontier = frontier.flatMap { p in alphabet.map { p + String($0) } }
            cases += frontier.filter { $0.filter { $0 == "." }.count == 3 }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let length = Int.random(in: 7...15, using: &generator)
            cases.append(String((0..<length).map { _ in alphabet.randomElement(using: &generator)! }))
        }
        var mismatches: [String] = []
        for c in cases where pton(c) != ours(c) { mismatches.append(c) }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        #expect(cases.count > 40_000)
        // inet_pton stops at a NUL and would take what came before; the byte parser refuses it.
        #expect(IPAddress("1.2.3.4\u{0}") == nil && IPAddress("1.2.3.4\u{0}9") == nil && IPAddress("::1\u{0}zz") == nil)
    }

    /// IPv4 addresses and ports are written digit by digit: the same text as plain interpolation,
    /// and it parses back to the same value.
    /// Plain comparisons in the loop and one expectation over what failed: 95,000 `#expect`s took
    /// 281 s under the address sanitizer, the longest test of the CI run.
    @Test func writtenAddressesMatchInterpolationAndParseBack() {
        var generator = SystemRandomNumberGenerator()
        let edges: [UInt32] = [0, 1, 9, 10, 99, 100, 255, 256, 0x0a00_0001, 0x7f00_0001, 0xffff_ffff, 0x0909_0909, 0x6464_6464]
        var wrong: [String] = []
        for v in edges + (0..<5000).map({ _ in UInt32.random(in: .min ... .max, using: &generator) }) {
            let reference = "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
            if IPAddress.v4(v).description != reference { wrong.append("\(IPAddress.v4(v)) written, \(reference) expected") }
            for port: UInt16 in [1, 9, 10, 80, 443, 8080, 15008, 65535, UInt16.random(in: 1...65535, using: &generator)] {
                let address = SocketAddress(ip: .v4(v), port: port)
                if address.description != "\(reference):\(port)" { wrong.append("\(address) written, \(reference):\(port) expected") }
                if SocketAddress(address.description) != address { wrong.append("\(address) does not parse back") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(5))")
        #expect(SocketAddress(ip: IPAddress("fd00::1")!, port: 443).description == "[fd00::1]:443")
    }

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
