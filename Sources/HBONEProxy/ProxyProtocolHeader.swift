import HBONECore
import HBONEIdentity

/// The PROXY protocol v2 header an application tunnel sends before the tunnel's bytes (HAProxy's
/// proxy-protocol.txt, section 2.2): who the client was, where its tunnel was going, and (TLV
/// 0xD0, as ztunnel writes it) the client's SPIFFE identity. Binary v2 only: it carries TLVs and
/// is what ztunnel sends.
struct ProxyProtocolHeader: Equatable {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// ztunnel's TLV for the client's SPIFFE identity.
    static let identityTLV: UInt8 = 0xD0

    var source: SocketAddress
    var destination: SocketAddress
    var sourceIdentity: SPIFFEID?

    var bytes: [UInt8] {
        // One family for both: an IPv4 address beside an IPv6 one goes as IPv4-mapped IPv6.
        let v4 = source.ip.isIPv4 && destination.ip.isIPv4
        let identity = sourceIdentity.map { Array($0.description.utf8) } ?? []
        let tlvLength = identity.isEmpty ? 0 : 3 + identity.count
        let length = (v4 ? 12 : 36) + tlvLength
        var out = Self.signature
        out.reserveCapacity(16 + length)
        out.append(0x21)                    // version 2, PROXY (a relayed connection)
        out.append(v4 ? 0x11 : 0x21)        // TCP over IPv4 / IPv6
        Self.append(UInt16(length), to: &out)
        for ip in [source.ip, destination.ip] {
            if v4, case let .v4(a) = ip {
                withUnsafeBytes(of: a.bigEndian) { out.append(contentsOf: $0) }
            } else {
                let (hi, lo) = ip.mappedV6
                withUnsafeBytes(of: hi.bigEndian) { out.append(contentsOf: $0) }
                withUnsafeBytes(of: lo.bigEndian) { out.append(contentsOf: $0) }
            }
        }
        Self.append(source.port, to: &out)
        Self.append(destination.port, to: &out)
        if !identity.isEmpty {
            out.append(Self.identityTLV)
            Self.append(UInt16(identity.count), to: &out)
            out.append(contentsOf: identity)
        }
        return out
    }

    private static func append(_ v: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(v & 0xff))
    }
}
