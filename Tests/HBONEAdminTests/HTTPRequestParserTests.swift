import Testing
@testable import HBONEAdmin

@Suite struct HTTPRequestParserTests {
    func parse(_ text: String) -> HTTPRequestParser.Outcome {
        var p = HTTPRequestParser()
        return p.feed(Array(text.utf8))
    }

    @Test func getWithQueryAndHeaders() {
        guard case let .request(r) = parse("POST /logging?level=debug&x HTTP/1.1\r\nHost: a\r\nUser-Agent: curl\r\n\r\n") else {
            Issue.record("not parsed")
            return
        }
        #expect(r.method == "POST")
        #expect(r.path == "/logging")
        #expect(r.query == ["level": "debug", "x": ""])
        #expect(r.headers.first?.0 == "host")
    }

    @Test func requestInPieces() {
        var p = HTTPRequestParser()
        #expect(p.feed(Array("GET /config_dump HT".utf8)) == .needMore)
        #expect(p.feed(Array("TP/1.1\r\n\r".utf8)) == .needMore)
        guard case .request = p.feed(Array("\n".utf8)) else {
            Issue.record("not parsed")
            return
        }
    }

    @Test(arguments: [
        ("GET /\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("get / HTTP/1.1\r\n\r\n", 400),
        ("GET relative HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        ("POST /quitquitquit HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
        ("GET / HTTP/1.1\r\nX: \u{7}\r\n\r\n", 400),
    ])
    func malformed(text: String, status: Int) {
        guard case let .bad(got, _) = parse(text) else {
            Issue.record("accepted: \(text.debugDescription)")
            return
        }
        #expect(got == status, "\(text.debugDescription)")
    }

    @Test func oversizedRefused() {
        let big = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        guard case let .bad(status, _) = parse(big) else {
            Issue.record("accepted")
            return
        }
        #expect(status == 431)
        var p = HTTPRequestParser()
        guard case let .bad(s2, _) = p.feed(Array(repeating: UInt8(ascii: "a"), count: 9000)) else {
            Issue.record("endless header accepted")
            return
        }
        #expect(s2 == 431)
    }
}
