import Testing
import HBONETestSupport
import HBONECore
import HBONEConfig
import HBONETLS
@testable import HBONEProxy

/// Revocation lists through both proxies on the in-memory network: east presents a checkout SVID
/// that east's intermediate revokes (scripts/gen-test-pki.sh's crl/east-revokes-checkout.pem).
@Suite struct RevocationPathTests {
    static func lists(_ name: String) throws -> [RevocationList] { try RevocationList.parse(TestPKI.bytes("crl/\(name)")) }

    func westState(_ mesh: InMemoryMesh, lists: [RevocationList]?, version: Int = 2) throws -> ProxyState {
        try InMemoryMesh.state(node: "west", certificate: "certs-west/payments/ledger", bundle: "bundle-root.pem", version: version,
                               revocationLists: lists)
    }

    /// A list that arrives later closes the open connection at once, with its tunnel (CERT_REVOKED),
    /// counts it, and the next handshake is refused; a reload with the same lists checks nothing again.
    @Test func aLaterListClosesTheOpenConnectionAndRefusesTheNext() throws {
        let mesh = try InMemoryMesh(eastCertificate: "certs-revoked/payments/checkout", westRevocationLists: [])
        try mesh.serve(port: 8080)
        let app = try mesh.establishedTunnel("a")
        mesh.west.update(try westState(mesh, lists: Self.lists("west-empty.pem")))
        mesh.run()
        app.send("b")
        mesh.run()
        #expect(app.text == "ab", "another issuer's list revokes nothing here")
        mesh.west.update(try westState(mesh, lists: Self.lists("east-revokes-checkout.pem"), version: 3))
        mesh.run()
        #expect(app.eof || app.failure != nil)
        #expect(mesh.west.hboneConnectionCount == 0)
        #expect(mesh.westRecords.count == 1 && mesh.westRecords[0].error?.code == .revoked, "\(mesh.westRecords.map { "\($0.error.map { "\($0)" } ?? "-")" })")
        #expect(mesh.westRecords.first?.error?.responseFlags == "CERT_REVOKED")
        #expect(mesh.west.stats.revokedAsServer.load(ordering: .relaxed) == 1)
        let next = mesh.connect(to: "10.1.0.20:8080")
        next.send("c")
        mesh.run()
        #expect(next.eof || next.failure != nil)
        #expect(mesh.west.stats.failureReasons.snapshot["revoked"] == 1)
        #expect(mesh.west.stats.revokedAsServer.load(ordering: .relaxed) == 2)
    }

    /// Lists configured by a reload for the first time reach connections made before them too: no
    /// chain was kept to check then, so each such connection is drained (GOAWAY, its tunnel cut
    /// after the drain period) and counted; the next connection is checked and refused. Before, a
    /// revoked peer's connection made before CRL_PATH was set stayed open for good.
    @Test func listsConfiguredLaterDrainConnectionsMadeBeforeThem() throws {
        let mesh = try InMemoryMesh(eastCertificate: "certs-revoked/payments/checkout")   // west: no lists at all
        try mesh.serve(port: 8080)
        let app = try mesh.establishedTunnel("a")
        mesh.west.update(try westState(mesh, lists: Self.lists("east-revokes-checkout.pem")))
        mesh.run()
        #expect(mesh.west.stats.crlUntrackedAsServer.load(ordering: .relaxed) == 1)
        // Draining: the open tunnel goes on until the drain period (5 s) ends, then is cut.
        app.send("b")
        mesh.run()
        #expect(app.text == "ab")
        mesh.advance(seconds: 5.1)
        #expect(app.eof || app.failure != nil)
        #expect(mesh.west.hboneConnectionCount == 0 && mesh.west.openTunnels == 0)
        let next = mesh.connect(to: "10.1.0.20:8080")
        next.send("c")
        mesh.run()
        #expect(next.eof || next.failure != nil)
        #expect(mesh.west.stats.failureReasons.snapshot["revoked"] == 1)
        // Another reload with the same lists drains nothing more.
        mesh.west.update(try westState(mesh, lists: Self.lists("east-revokes-checkout.pem"), version: 3))
        mesh.run()
        #expect(mesh.west.stats.crlUntrackedAsServer.load(ordering: .relaxed) == 1)
    }

    /// East, as client, drops its pooled connection to a server whose certificate a new list
    /// revokes (the root's list revoking east's own intermediate is no reason to: it judges peers).
    @Test func aClientDropsAPooledConnectionToARevokedServer() throws {
        let mesh = try InMemoryMesh(eastRevocationLists: [])
        try mesh.serve(port: 8080)
        let app = try mesh.establishedTunnel("a")
        #expect(mesh.east.hboneConnectionCount == 1)
        func eastState(_ lists: [RevocationList], version: Int) throws -> ProxyState {
            try InMemoryMesh.state(node: "east", certificate: "certs-east/payments/checkout", bundle: "bundle-root.pem", version: version,
                                   revocationLists: lists)
        }
        mesh.east.update(try eastState(Self.lists("root-revokes-east.pem"), version: 2))
        mesh.run()
        app.send("b")
        mesh.run()
        #expect(app.text == "ab")
        mesh.east.update(try eastState(Self.lists("west-revokes-ledger.pem"), version: 3))
        mesh.run()
        #expect(app.eof || app.failure != nil)
        #expect(mesh.east.hboneConnectionCount == 0 && mesh.east.pooledConnectionCount == 0)
        #expect(mesh.east.stats.revokedAsClient.load(ordering: .relaxed) == 1)
        #expect(mesh.eastRecords.first?.error?.responseFlags == "CERT_REVOKED")
    }
}
