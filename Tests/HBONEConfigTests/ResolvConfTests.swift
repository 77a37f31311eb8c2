import Testing
import HBONECore
@testable import HBONEConfig

/// resolv.conf as glibc and ztunnel's resolver read it, and the names a hostname is asked as.
@Suite struct ResolvConfTests {
    @Test func readsNameserversSearchAndNdots() {
        let conf = ResolvConf(parsing: """
        # Kubernetes' ClusterFirst
        nameserver 10.96.0.10
        nameserver fe80::1%eth0
        nameserver not-an-address
        search istio-system.svc.cluster.local svc.cluster.local Cluster.Local. .
        options ndots:5 timeout:2
        """)
        #expect(conf.nameservers == [SocketAddress("10.96.0.10:53")!])
        #expect(conf.search == ["istio-system.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        #expect(conf.ndots == 5)
        // `domain` and `search` replace each other, the last winning; ndots is capped at 15; a
        // domain that is no DNS name is left out; at most six are kept.
        #expect(ResolvConf(parsing: "search a.test\ndomain b.test\noptions ndots:40").search == ["b.test"])
        #expect(ResolvConf(parsing: "options ndots:40").ndots == 15)
        #expect(ResolvConf(parsing: "options ndots:-1 ndots:x").ndots == 1)
        #expect(ResolvConf(parsing: "search a..b ok.test").search == ["ok.test"])
        #expect(ResolvConf(parsing: "search a b c d e f g h").search == ["a", "b", "c", "d", "e", "f"])
        #expect(ResolvConf(parsing: "") == ResolvConf())
    }

    @Test func aNameIsAskedWithTheSearchDomainsByItsDots() {
        let conf = ResolvConf(parsing: "search ns.svc.cluster.local svc.cluster.local\noptions ndots:2")
        // Fewer dots than ndots: the search domains first, then the name as it is.
        #expect(conf.candidates(for: "db") == ["db.ns.svc.cluster.local", "db.svc.cluster.local", "db"])
        #expect(conf.candidates(for: "db.other") == ["db.other.ns.svc.cluster.local", "db.other.svc.cluster.local", "db.other"])
        // As many: the name first.
        #expect(conf.candidates(for: "api.example.com") == ["api.example.com", "api.example.com.ns.svc.cluster.local",
                                                              "api.example.com.svc.cluster.local"])
        // Complete (a trailing dot), no search list, or ndots 0: as it is only.
        #expect(conf.candidates(for: "db.") == ["db."])
        #expect(ResolvConf(parsing: "options ndots:5").candidates(for: "db") == ["db"])
        #expect(ResolvConf(parsing: "search a.test\noptions ndots:0").candidates(for: "db") == ["db"])
        // A name that would be too long with a search domain is not asked with it.
        let long = String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 63) + "." + String(repeating: "c", count: 63)
        let wide = ResolvConf(parsing: "search \(String(repeating: "d", count: 63)).test short.test\noptions ndots:5")
        #expect(wide.candidates(for: long) == [long + ".short.test", long])
    }
}
