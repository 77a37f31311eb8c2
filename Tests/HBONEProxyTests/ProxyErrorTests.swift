import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import HBONEProxy

/// What operators see derives from a failure's side and code, never from its text.
@Suite struct ProxyErrorTests {
    @Test(arguments: [
        (ProxyError.Code.denied, "DENY"), (.tls, "TLS_FAILURE"), (.http2, "H2_HANDSHAKE_FAILURE"), (.connect, "CONNECT"),
        (.rejected, "CONNECT"), (.unknownDestination, "CONNECT"), (.badRequest, "-"), (.connectionLost, "-"), (.idle, "-"),
        (.closed, "-"), (.config, "-"), (.dnsLookup, "CONNECT"),
    ] as [(ProxyError.Code, String)])
    func responseFlagsFollowTheCode(code: ProxyError.Code, flags: String) {
        #expect(ProxyError(.upstream, code, "whatever the text says: DENY TLS").responseFlags == flags)
        #expect(Worker.responseFlags(ProxyError(.downstream, code, "")) == flags)
    }

    @Test func noErrorIsADash() { #expect(Worker.responseFlags(nil) == "-") }

    @Test func equalityIsOnSideAndCode() {
        #expect(ProxyError(.upstream, .connect, "a", errno: ECONNREFUSED) == ProxyError(.upstream, .connect, "b"))
        #expect(ProxyError(.upstream, .connect, "a") != ProxyError(.downstream, .connect, "a"))
        #expect(ProxyError(.upstream, .connect, "a") != ProxyError(.upstream, .tls, "a"))
    }

    @Test(arguments: [
        (ProxyError(.upstream, .denied, "401"), Socks5Parser.notAllowed),
        (ProxyError(.upstream, .connect, "refused", errno: ECONNREFUSED), Socks5Parser.connectionRefused),
        (ProxyError(.upstream, .connect, "timed out", errno: ETIMEDOUT), Socks5Parser.hostUnreachable),
        (ProxyError(.upstream, .connect, "no route", errno: ENETUNREACH), Socks5Parser.networkUnreachable),
        (ProxyError(.upstream, .rejected, "503"), Socks5Parser.hostUnreachable),
        (ProxyError(.internal, .config, "no certificate"), Socks5Parser.generalFailure),
        (ProxyError(.upstream, .dnsLookup, "no address for api.example.com"), Socks5Parser.hostUnreachable),
        // Refusals, as `Worker.refusal` makes them from the plan's SOCKS5 code, give that code back.
        (Worker.refusal("loop to the proxy itself", socksCode: Socks5Parser.notAllowed), Socks5Parser.notAllowed),
        (Worker.refusal("unknown destination", socksCode: Socks5Parser.hostUnreachable), Socks5Parser.hostUnreachable),
        (Worker.refusal("no certificate yet", socksCode: Socks5Parser.generalFailure), Socks5Parser.generalFailure),
    ] as [(ProxyError, UInt8)])
    func socksRepliesFollowTheSideCodeAndErrno(error: ProxyError, reply: UInt8) {
        #expect(Socks5Parser.replyCode(for: error) == reply)
    }
}
