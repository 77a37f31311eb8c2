/// One header field as received or sent. Names are lowercase on the wire.
public struct H2Header: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String
    /// Whether HPACK may keep it in the connection's dynamic table (sent only). A value that
    /// differs on every stream (`traceparent`, `forwarded` with the client's port) is sent with
    /// `false`: indexed, each one evicted an older entry on both sides, and the entries worth
    /// keeping (`baggage`, the authority) went out again as literals.
    public var indexed: Bool

    public init(_ name: String, _ value: String, indexed: Bool = true) {
        self.name = name
        self.value = value
        self.indexed = indexed
    }

    public var description: String { "\(name): \(value)" }
}

extension Array where Element == H2Header {
    /// The first value of `name`. Each inbound CONNECT is looked up about seven times; comparing
    /// the UTF-8 lengths first (stored, O(1)) skips nearly every full string comparison, which
    /// were ~1,600 instructions per tunnel.
    @inlinable public subscript(header name: String) -> String? {
        let length = name.utf8.count
        for h in self where h.name.utf8.count == length && h.name == name { return h.value }
        return nil
    }

    /// Every value of a header that may repeat (`baggage`).
    @inlinable public func values(_ name: String) -> [String] {
        let length = name.utf8.count
        return compactMap { $0.name.utf8.count == length && $0.name == name ? $0.value : nil }
    }
}
