import Foundation
import Testing
@testable import HBONEXDS

/// When the proxy asks the CA, on a clock the test moves.
@Suite struct CertificateScheduleTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    func at(_ seconds: TimeInterval) -> Date { t0.addingTimeInterval(seconds) }

    @Test func newIdentitiesAreDueAtOnceAtMostEightInFlight() {
        var s = CertificateSchedule<String>()
        s.want(Set((0..<10).map { "id\($0)" }), now: t0)
        let first = s.due(now: t0)
        #expect(first.count == 8)
        #expect(s.due(now: t0).isEmpty)   // eight still in flight
        s.succeeded(first[0], notBefore: t0, notAfter: at(86_400))
        #expect(s.due(now: t0).count == 1)
        #expect(s.due(now: t0).isEmpty)
    }

    @Test func aValidCertificateIsRenewedAtHalfLife() {
        var s = CertificateSchedule<String>()
        s.want(["a"], now: t0)
        _ = s.due(now: t0)
        s.succeeded("a", notBefore: t0, notAfter: at(86_400))
        #expect(s.nextDue == at(43_200))
        #expect(s.due(now: at(43_199)).isEmpty)
        #expect(s.due(now: at(43_200)) == ["a"])
        #expect(s.usable("a", now: at(43_300)))   // still served while the renewal is in flight
    }

    @Test func failuresBackOffPerIdentityFromOneSecondToOneHundredFiftyAndKeepTheValidCertificate() {
        var s = CertificateSchedule<String>()
        s.want(["a", "b"], now: t0)
        _ = s.due(now: t0)
        s.succeeded("b", notBefore: t0, notAfter: at(10_000))
        var now = t0
        var delays: [TimeInterval] = []
        for _ in 0..<10 {
            s.failed("a", reason: "UNAVAILABLE", now: now)
            guard case let .retrying(due, _, _, _)? = s.states["a"] else { Issue.record("not retrying"); return }
            delays.append(due.timeIntervalSince(now))
            now = due
            #expect(s.due(now: now) == ["a"])
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 64, 128, 150, 150])
        #expect(!s.usable("a", now: now))
        // A renewal of b that fails keeps b's certificate until it expires, never after.
        #expect(s.due(now: at(5000)).contains("b"))
        s.failed("b", reason: "UNAVAILABLE", now: at(5000))
        #expect(s.usable("b", now: at(9999)))
        #expect(!s.usable("b", now: at(10_000)))
        // Success clears the backoff.
        s.succeeded("a", notBefore: now, notAfter: now.addingTimeInterval(100))
        _ = s.due(now: now.addingTimeInterval(50))
        s.failed("a", reason: "x", now: now.addingTimeInterval(50))
        if case let .retrying(due, failures, _, _)? = s.states["a"] {
            #expect(failures == 1 && due == now.addingTimeInterval(51))
        } else {
            Issue.record("not retrying")
        }
    }

    @Test func anIdentityNoLongerWantedIsForgotten() {
        var s = CertificateSchedule<String>()
        s.want(["a", "b"], now: t0)
        _ = s.due(now: t0)
        s.want(["b"], now: t0)
        #expect(s.states["a"] == nil)
        s.succeeded("a", notBefore: t0, notAfter: at(10))   // a late answer for a forgotten identity
        #expect(s.states["a"] == nil)
    }
}
