import Testing
import HBONECore

/// A flood of one warning is one line per interval, and each line counts what it held back.
@Suite struct LogThrottleTests {
    @Test func oneLinePerIntervalCountingWhatWasHeldBack() {
        var t = LogThrottle(intervalNanos: 1_000)
        #expect(t.admit(now: 0) == 0, "the first event is logged, even at time zero")
        #expect(t.admit(now: 1) == nil)
        #expect(t.admit(now: 999) == nil)
        #expect(t.admit(now: 1_000) == 2, "a full interval later: logged, naming the two held back")
        #expect(t.admit(now: 1_500) == nil)
        #expect(t.admit(now: 5_000) == 1)
        #expect(t.admit(now: 9_000) == 0, "nothing held back since the last line")
    }

    @Test func aClockGoingBackwardsDoesNotTrapOrSilenceForever() {
        var t = LogThrottle(intervalNanos: 1_000)
        #expect(t.admit(now: 10_000) == 0)
        // Wrapping subtraction: an earlier time reads as far in the future, so the line goes out.
        #expect(t.admit(now: 5_000) == 0)
    }
}
