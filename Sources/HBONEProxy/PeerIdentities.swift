import HBONEIdentity

/// The identities an outbound HBONE connection's peer may present: the destination workload's,
/// and the service's subject alt names when it names any. Nearly always one, held here without a
/// set: a one-element `Set` built per tunnel was an allocation, and the pool key hashed and
/// compared it element by element (scripts/bench-tunnel-cost.sh).
public enum PeerIdentities: Hashable, Sendable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
    case one(SPIFFEID)
    /// Any other number (a single identity is always `.one`, so equal sets are equal values).
    case several(Set<SPIFFEID>)

    public init(_ identities: Set<SPIFFEID>) {
        self = identities.count == 1 ? .one(identities.first!) : .several(identities)
    }

    /// `identity`, and `more` when they add any.
    public init(_ identity: SPIFFEID, adding more: [SPIFFEID]) {
        if more.allSatisfy({ $0 == identity }) {
            self = .one(identity)
        } else {
            var all = Set(more)
            all.insert(identity)
            self = .several(all)
        }
    }

    public init(arrayLiteral identities: SPIFFEID...) { self.init(Set(identities)) }

    /// For the handshake's check of the peer's certificate (once per connection, not per tunnel).
    public var all: Set<SPIFFEID> {
        switch self {
        case let .one(id): [id]
        case let .several(ids): ids
        }
    }

    public func makeIterator() -> Set<SPIFFEID>.Iterator { all.makeIterator() }

    public var description: String { all.map(\.description).sorted().description }
}
