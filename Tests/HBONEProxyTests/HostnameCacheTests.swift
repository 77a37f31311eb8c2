import Testing
import HBONECore
@testable import HBONEProxy

@Suite struct HostnameCacheTests {
    let second: UInt64 = 1_000_000_000
    let api = HostnameCache.Key("API.example.com.", ipv6: false)
    let ip = IPAddress("198.51.100.7")!

    @Test func anAnswerIsKeptForItsTTLByNameAndFamily() {
        var c = HostnameCache()
        c.store(.addresses([ip]), for: api, ttl: 30, now: 100 * second)
        #expect(c.lookup(HostnameCache.Key("api.example.com", ipv6: false), now: 129 * second) == .addresses([ip]))
        #expect(c.lookup(api, now: 130 * second) == nil)
        #expect(c.lookup(HostnameCache.Key("api.example.com", ipv6: true), now: 100 * second) == nil)
    }

    @Test func ttlsAreClamped() {
        var c = HostnameCache()
        // 0 (or none) is kept a second, so each connection does not go upstream.
        c.store(.addresses([ip]), for: api, ttl: 0, now: 0)
        #expect(c.lookup(api, now: second - 1) != nil && c.lookup(api, now: second) == nil)
        c.store(.addresses([ip]), for: api, ttl: .max, now: 0)
        #expect(c.lookup(api, now: 86_400 * second - 1) != nil && c.lookup(api, now: 86_400 * second) == nil)
        // No addresses: the SOA's TTL up to five minutes; thirty seconds without one.
        c.store(.noAddresses, for: api, ttl: 3600, now: 0)
        #expect(c.lookup(api, now: 299 * second) == .noAddresses && c.lookup(api, now: 300 * second) == nil)
        c.store(.noAddresses, for: api, ttl: nil, now: 0)
        #expect(c.lookup(api, now: 29 * second) == .noAddresses && c.lookup(api, now: 30 * second) == nil)
    }

    @Test func fullItDropsTheExpiredThenTheSoonestToExpire() {
        var c = HostnameCache(capacity: 3)
        let keys = (0..<5).map { HostnameCache.Key("h\($0).example.com", ipv6: false) }
        c.store(.addresses([ip]), for: keys[0], ttl: 10, now: 0)
        c.store(.addresses([ip]), for: keys[1], ttl: 100, now: 0)
        c.store(.addresses([ip]), for: keys[2], ttl: 50, now: 0)
        // Nothing has expired: the one expiring soonest (h0) goes.
        c.store(.addresses([ip]), for: keys[3], ttl: 100, now: 5 * second)
        #expect(c.count == 3 && c.lookup(keys[0], now: 5 * second) == nil && c.lookup(keys[2], now: 5 * second) != nil)
        // At 60 s h2 has expired: it alone goes.
        c.store(.addresses([ip]), for: keys[4], ttl: 100, now: 60 * second)
        #expect(c.count == 3 && [1, 3, 4].allSatisfy { c.lookup(keys[$0], now: 60 * second) != nil })
        // Storing a name already held replaces it, dropping nothing.
        c.store(.noAddresses, for: keys[1], ttl: 10, now: 60 * second)
        #expect(c.count == 3 && c.lookup(keys[1], now: 60 * second) == .noAddresses)
    }
}
