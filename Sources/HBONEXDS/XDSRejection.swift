/// A resource istiod sent that this proxy will not use, and why: one entry of a NACK's
/// `error_detail` ("name: reason", joined by "; " as ztunnel joins them).
public struct XDSRejection: Error, Equatable, Sendable, CustomStringConvertible {
    public let name: String
    public let reason: String

    public init(_ name: String, _ reason: String) {
        self.name = name
        self.reason = reason
    }

    public var description: String { "\(name): \(reason)" }
}
