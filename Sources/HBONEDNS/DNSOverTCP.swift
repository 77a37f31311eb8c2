/// DNS over TCP's framing (RFC 1035 4.2.2, RFC 7766): each message preceded by its length in two
/// bytes, big-endian. Used both ways: the proxy's TCP clients, and its TCP queries upstream.
public enum DNSOverTCP {
    /// `message` with its length in front.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        [UInt8(truncatingIfNeeded: message.count >> 8), UInt8(truncatingIfNeeded: message.count)] + message
    }

    /// The first whole message in `buffer`, taken off its front; nil while it is not all there.
    public static func takeMessage(from buffer: inout [UInt8]) -> [UInt8]? {
        guard buffer.count >= 2 else { return nil }
        let length = Int(buffer[0]) << 8 | Int(buffer[1])
        guard buffer.count >= 2 + length else { return nil }
        let message = Array(buffer[2..<(2 + length)])
        buffer.removeFirst(2 + length)
        return message
    }
}
