import Testing
import HBONECore
@testable import HBONEProxy

@Suite struct Socks5ParserTests {
    func feed(_ parser: inout Socks5Parser, _ bytes: [UInt8]) -> Socks5Parser.Step {
        bytes.withUnsafeBytes { parser.feed($0) }
    }

    @Test func ipv4ConnectInPieces() {
        var p = Socks5Parser()
        #expect(feed(&p, [5]).outcome == .needMore)
        let greeting = feed(&p, [1, 0])
        #expect(greeting.send == [5, 0])
        #expect(feed(&p, [5, 1, 0, 1, 127, 0]).outcome == .needMore)
        let step = feed(&p, [0, 20, 0x1f, 0x90])
        #expect(step.outcome == .connect(.address(SocketAddress("127.0.0.20:8080")!)))
    }

    @Test func greetingRequestAndEarlyDataTogether() {
        var p = Socks5Parser()
        let step = feed(&p, [5, 1, 0, 5, 1, 0, 3, 9] + Array("ledger.ns".utf8) + [0, 80] + Array("GET".utf8))
        #expect(step.send == [5, 0])
        #expect(step.outcome == .connect(.domain("ledger.ns", 80)))
        #expect(p.takeLeftover() == Array("GET".utf8))
    }

    @Test func ipv6Connect() {
        var p = Socks5Parser()
        _ = feed(&p, [5, 1, 0])
        let step = feed(&p, [5, 1, 0, 4] + [UInt8](repeating: 0, count: 15) + [1] + [0x3a, 0x98])
        #expect(step.outcome == .connect(.address(SocketAddress("[::1]:15000")!)))
    }

    @Test(arguments: [
        ([4, 1, 0] as [UInt8], "not SOCKS version 5"),
        ([5, 0], "no authentication methods"),
        ([5, 1, 2], "client requires authentication"),
        ([5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80], "only CONNECT is supported"),
        ([5, 1, 0, 5, 1, 0, 9, 0], "unknown address type 9"),
        ([5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 0], "port 0"),
        ([5, 1, 0, 5, 1, 0, 3, 0, 0, 80], "empty domain name"),
        ([5, 1, 0, 5, 1, 0, 3, 2, 0x0a, 0x0d, 0, 80], "domain name is not printable ASCII"),
        ([5, 1, 0, 5, 1, 1, 1, 1, 2, 3, 4, 0, 80], "reserved byte not zero"),
    ])
    func malformed(bytes: [UInt8], reason: String) {
        var p = Socks5Parser()
        #expect(feed(&p, bytes).outcome == .fail(reason))
    }

    /// The longest exchange (255 methods, a 255-byte name) with 5000 bytes of early data in the
    /// same write: the bytes after the request are early data, not an over-long handshake.
    @Test func earlyDataAfterTheLongestRequestIsNotHandshake() {
        var p = Socks5Parser()
        let name = [UInt8](repeating: 0x61, count: 255)
        let early = [UInt8](repeating: 7, count: 5000)
        let step = feed(&p, [5, 255, 0] + [UInt8](repeating: 1, count: 254) + [5, 1, 0, 3, 255] + name + [0, 80] + early)
        #expect(step.outcome == .connect(.domain(String(repeating: "a", count: 255), 80)))
        #expect(p.takeLeftover() == early)
    }
}
