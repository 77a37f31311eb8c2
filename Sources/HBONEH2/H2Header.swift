/// One header field as received or sent. Names are lowercase on the wire.
public struct H2Header: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }
}

extension Array where Element == H2Header {
    public subscript(header name: String) -> String? { first { $0.name == name }?.value }
    /// Every value of a header that may repeat (`baggage`).
    public func values(_ name: String) -> [String] { compactMap { $0.name == name ? $0.value : nil } }
}
