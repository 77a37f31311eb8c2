import Testing
import HBONEIdentity
@testable import HBONEProxy

/// Pool keys compare expected peer identities as sets: however a set of identities is built, equal
/// sets must be equal values with equal hashes, or two tunnels to one peer would not share its
/// connection.
@Suite struct PeerIdentitiesTests {
    static let ledger = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger")
    static let canary = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/ledger-canary")

    @Test func equalSetsAreEqualValues() {
        let built: [PeerIdentities] = [
            [Self.ledger],
            PeerIdentities(Self.ledger, adding: []),
            PeerIdentities(Self.ledger, adding: [Self.ledger]),
            PeerIdentities([Self.ledger]),
            // Parsed again: another box, the same ID.
            PeerIdentities(try! SPIFFEID(parsing: Self.ledger.uri), adding: []),
        ]
        for p in built {
            #expect(p == .one(Self.ledger))
            #expect(p.hashValue == PeerIdentities.one(Self.ledger).hashValue)
            #expect(p.all == [Self.ledger])
        }
        let two: [PeerIdentities] = [
            [Self.ledger, Self.canary],
            [Self.canary, Self.ledger],
            PeerIdentities(Self.ledger, adding: [Self.canary]),
            PeerIdentities(Self.canary, adding: [Self.ledger, Self.canary]),
        ]
        for p in two {
            #expect(p == .several([Self.ledger, Self.canary]))
            #expect(p.hashValue == two[0].hashValue)
            #expect(p != [Self.ledger])
            #expect(Set(p) == [Self.ledger, Self.canary])
        }
        #expect(PeerIdentities([]) == .several([]) && PeerIdentities([]).all.isEmpty)
    }
}
