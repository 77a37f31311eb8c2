/// A tool (CA, checks, admin client) could not do what it was asked: the message says what and why.
public struct ToolError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
