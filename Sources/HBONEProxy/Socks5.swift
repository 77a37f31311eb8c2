import HBONECore

/// A SOCKS5 (RFC 1928) server exchange without I/O: feed bytes, get what to do next.
/// Supports no-auth and CONNECT with IPv4, IPv6 and domain names.
public struct Socks5Parser: Sendable {
    public enum Target: Sendable, Equatable {
        case address(SocketAddress)
        case domain(String, UInt16)
    }

    /// What `feed` found: bytes to send first, then how the exchange stands.
    public struct Step: Sendable, Equatable {
        public enum Outcome: Sendable, Equatable {
            case needMore
            /// The request is complete; `leftover` holds early application data.
            case connect(Target)
            /// Close after sending `send`.
            case fail(String)
        }
        public var send: [UInt8]
        public var outcome: Outcome
    }

    /// Internal result of one parse step.
    enum Advance: Equatable {
        case needMore
        case reply([UInt8])
        case connect(Target, consumed: Int)
        case fail(reply: [UInt8], reason: String)
    }

    private enum State { case greeting, request, done }
    private var state = State.greeting
    private var buffer: [UInt8] = []

    /// A client may not send more than this before its request completes: the longest greeting
    /// (2 + 255) and request (4 + 1 + 255 + 2) fit. Bytes after a complete request are early data.
    static let maxHandshakeBytes = 600

    public init() {}

    public static func reply(_ code: UInt8) -> [UInt8] { [5, code, 0, 1, 0, 0, 0, 0, 0, 0] }
    public static let succeeded: UInt8 = 0, generalFailure: UInt8 = 1, notAllowed: UInt8 = 2
    public static let networkUnreachable: UInt8 = 3, hostUnreachable: UInt8 = 4, connectionRefused: UInt8 = 5
    public static let commandNotSupported: UInt8 = 7, addressTypeNotSupported: UInt8 = 8

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Step {
        guard state != .done else { return Step(send: [], outcome: .fail("data after request")) }
        buffer.append(contentsOf: bytes)
        var send: [UInt8] = []
        // Greeting and request may arrive together: run every step the buffer allows.
        while true {
            switch advance() {
            case .needMore:
                // Only an unfinished exchange is bounded; early data after a request never gets here.
                if buffer.count > Socks5Parser.maxHandshakeBytes { return Step(send: send, outcome: .fail("handshake too long")) }
                return Step(send: send, outcome: .needMore)
            case let .reply(bytes):
                send += bytes
            case let .connect(target, consumed):
                buffer.removeFirst(consumed)
                return Step(send: send, outcome: .connect(target))
            case let .fail(reply, reason):
                return Step(send: send + reply, outcome: .fail(reason))
            }
        }
    }

    private mutating func advance() -> Advance {
        switch state {
        case .greeting:
            guard buffer.count >= 2 else { return .needMore }
            guard buffer[0] == 5 else { return .fail(reply: [], reason: "not SOCKS version 5") }
            let n = Int(buffer[1])
            guard n > 0 else { return .fail(reply: [5, 0xff], reason: "no authentication methods") }
            guard buffer.count >= 2 + n else { return .needMore }
            let methods = buffer[2..<2 + n]
            buffer.removeFirst(2 + n)
            guard methods.contains(0) else { return .fail(reply: [5, 0xff], reason: "client requires authentication") }
            state = .request
            return .reply([5, 0])
        case .request:
            guard buffer.count >= 4 else { return .needMore }
            guard buffer[0] == 5 else { return .fail(reply: [], reason: "bad request version") }
            guard buffer[1] == 1 else { return .fail(reply: Self.reply(Self.commandNotSupported), reason: "only CONNECT is supported") }
            guard buffer[2] == 0 else { return .fail(reply: Self.reply(Self.generalFailure), reason: "reserved byte not zero") }
            let b = buffer
            func port(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
            switch buffer[3] {
            case 1:
                guard buffer.count >= 10 else { return .needMore }
                let ip = IPAddress(networkBytes: buffer[4..<8])!
                let p = port(8)
                state = .done
                guard p != 0 else { return .fail(reply: Self.reply(Self.generalFailure), reason: "port 0") }
                return .connect(.address(SocketAddress(ip: ip, port: p)), consumed: 10)
            case 4:
                guard buffer.count >= 22 else { return .needMore }
                let ip = IPAddress(networkBytes: buffer[4..<20])!
                let p = port(20)
                state = .done
                guard p != 0 else { return .fail(reply: Self.reply(Self.generalFailure), reason: "port 0") }
                return .connect(.address(SocketAddress(ip: ip, port: p)), consumed: 22)
            case 3:
                guard buffer.count >= 5 else { return .needMore }
                let n = Int(buffer[4])
                guard n > 0 else { return .fail(reply: Self.reply(Self.generalFailure), reason: "empty domain name") }
                guard buffer.count >= 5 + n + 2 else { return .needMore }
                let nameBytes = buffer[5..<5 + n]
                guard nameBytes.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                    return .fail(reply: Self.reply(Self.generalFailure), reason: "domain name is not printable ASCII")
                }
                let p = port(5 + n)
                state = .done
                guard p != 0 else { return .fail(reply: Self.reply(Self.generalFailure), reason: "port 0") }
                return .connect(.domain(String(decoding: nameBytes, as: UTF8.self).lowercased(), p), consumed: 5 + n + 2)
            default:
                return .fail(reply: Self.reply(Self.addressTypeNotSupported), reason: "unknown address type \(buffer[3])")
            }
        case .done:
            return .fail(reply: [], reason: "data after request")
        }
    }

    /// Bytes received after the request (early application data), valid after `.connect`.
    public mutating func takeLeftover() -> [UInt8] {
        defer { buffer = [] }
        return buffer
    }
}

extension Socks5Parser {
    /// The RFC 1928 reply that fits a failed tunnel, so a SOCKS client learns why instead of
    /// seeing a bare EOF: denied 0x02, refused 0x05, network/host unreachable 0x03/0x04, else 0x01.
    static func replyCode(for error: ProxyError) -> UInt8 {
        if error.code == .denied { return notAllowed }
        // Refused before anything was opened (`Worker.refusal`; after a hostname lookup too).
        if error.side == .downstream && error.code == .unknownDestination { return hostUnreachable }
        if error.side == .downstream && error.code == .badRequest { return notAllowed }
        switch error.errno {
        case ECONNREFUSED?: return connectionRefused
        case ENETUNREACH?: return networkUnreachable
        case EHOSTUNREACH?, ETIMEDOUT?: return hostUnreachable
        default: break
        }
        return error.side == .upstream ? hostUnreachable : generalFailure
    }
}

#if canImport(Glibc)
import Glibc
#endif
