/// For each key, the sources claiming it, in `MeshSourceID` order; the greatest is the winner. Most
/// keys have one claimant, held without an array of its own.
struct ClaimTable<Key: Hashable & Sendable>: Sendable {
    private enum Claimants: Sendable {
        case one(MeshSourceID)
        /// Two or more, ascending.
        case many([MeshSourceID])
    }

    private var claims: [Key: Claimants] = [:]

    mutating func update(_ key: Key, _ id: MeshSourceID, adding: Bool) {
        if adding { claim(key, id) } else { release(key, id) }
    }

    mutating func claim(_ key: Key, _ id: MeshSourceID) {
        switch claims[key] {
        case nil:
            claims[key] = .one(id)
        case let .one(other):
            if other == id { return }
            claims[key] = .many(other < id ? [other, id] : [id, other])
        case var .many(ids):
            let at = Self.position(of: id, in: ids)
            if at < ids.count && ids[at] == id { return }
            claims[key] = .one(id)   // lets `ids` be changed in place
            ids.insert(id, at: at)
            claims[key] = .many(ids)
        }
    }

    mutating func release(_ key: Key, _ id: MeshSourceID) {
        switch claims[key] {
        case nil:
            return
        case let .one(other):
            if other == id { claims[key] = nil }
        case var .many(ids):
            let at = Self.position(of: id, in: ids)
            guard at < ids.count && ids[at] == id else { return }
            claims[key] = .one(id)
            ids.remove(at: at)
            claims[key] = ids.count == 1 ? .one(ids[0]) : .many(ids)
        }
    }

    func winner(_ key: Key) -> MeshSourceID? {
        switch claims[key] {
        case nil: nil
        case let .one(id): id
        case let .many(ids): ids.last
        }
    }

    /// Every claimant of `key`, ascending.
    func all(_ key: Key) -> [MeshSourceID] {
        switch claims[key] {
        case nil: []
        case let .one(id): [id]
        case let .many(ids): ids
        }
    }

    /// Where `id` is or would go in the ascending `ids`.
    private static func position(of id: MeshSourceID, in ids: [MeshSourceID]) -> Int {
        var low = 0, high = ids.count
        while low < high {
            let mid = (low + high) / 2
            if ids[mid] < id { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
