/// For each key, the sources claiming it with what each claims it with, in `MeshSourceID` order;
/// the greatest is the winner. Most keys have one claimant, held without an array of its own, and
/// each change hashes its key once where it can (a full build makes tens of thousands).
struct ClaimTable<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    struct Claim: Sendable {
        let id: MeshSourceID
        let value: Value
    }

    private enum Claimants: Sendable {
        case none
        case one(Claim)
        /// Two or more, ascending by id.
        case many([Claim])

        mutating func insert(_ claim: Claim) {
            switch self {
            case .none:
                self = .one(claim)
            case let .one(other):
                if other.id == claim.id {
                    self = .one(claim)
                } else {
                    self = .many(other.id < claim.id ? [other, claim] : [claim, other])
                }
            case var .many(list):
                self = .none   // `list` is then the array's only owner: changed in place
                let at = ClaimTable.position(of: claim.id, in: list)
                if at < list.count && list[at].id == claim.id { list[at] = claim } else { list.insert(claim, at: at) }
                self = .many(list)
            }
        }

        /// Whether none is left.
        mutating func remove(_ id: MeshSourceID) -> Bool {
            switch self {
            case .none:
                return true
            case let .one(other):
                if other.id == id { self = .none }
            case var .many(list):
                let at = ClaimTable.position(of: id, in: list)
                guard at < list.count && list[at].id == id else { return false }
                self = .none
                list.remove(at: at)
                self = list.count == 1 ? .one(list[0]) : .many(list)
            }
            if case .none = self { return true }
            return false
        }

        var winner: Value? {
            switch self {
            case .none: nil
            case let .one(c): c.value
            case let .many(list): list.last?.value
            }
        }

        var all: [Value] {
            switch self {
            case .none: []
            case let .one(c): [c.value]
            case let .many(list): list.map(\.value)
            }
        }
    }

    private var claims: [Key: Claimants] = [:]

    mutating func reserveCapacity(_ n: Int) { claims.reserveCapacity(n) }

    /// `value` nil releases `id`'s claim.
    mutating func update(_ key: Key, _ id: MeshSourceID, _ value: Value?) {
        if let value {
            claims[key, default: .none].insert(Claim(id: id, value: value))
        } else if claims[key]?.remove(id) == true {
            claims[key] = nil
        }
    }

    func winner(_ key: Key) -> Value? { claims[key]?.winner }

    /// What every claimant of `key` claims it with, ascending by id.
    func all(_ key: Key) -> [Value] { claims[key]?.all ?? [] }

    func forEachWinner(_ body: (Key, Value) -> Void) {
        for (key, c) in claims { if let w = c.winner { body(key, w) } }
    }

    func forEachKey(_ body: (Key, [Value]) -> Void) {
        for (key, c) in claims { body(key, c.all) }
    }

    /// Where `id` is or would go in the ascending `list`.
    fileprivate static func position(of id: MeshSourceID, in list: [Claim]) -> Int {
        var low = 0, high = list.count
        while low < high {
            let mid = (low + high) / 2
            if list[mid].id < id { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
