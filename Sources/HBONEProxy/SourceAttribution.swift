import HBONECore
import HBONEIdentity
import HBONEConfig

/// Who an inbound tunnel comes from, for policy (`ipBlocks`, `source.ip`) and attribution (access
/// log, metrics). The peer's address and identity are facts: TCP and mTLS proved them. A client's
/// `forwarded: for=` is only a claim, so it is believed only where the peer may make it: a node
/// proxy speaking for its own pod, that is, the claimed address belongs to a workload whose
/// identity is exactly the identity the peer authenticated with. Any other claim is ignored (and
/// the caller logs and counts it), so a workload cannot borrow another's address to slip past a
/// source-IP DENY or satisfy another workload's ALLOW.
struct SourceAttribution: Equatable {
    var src: SocketAddress
    var workload: Workload?
    /// A claim that was not believed (the address, or the header's start when it is not one).
    var rejectedClaim: String?

    init(peer: SocketAddress, peerIdentity: SPIFFEID?, forwarded: String?, workloadsByIP: [IPAddress: Workload]) {
        src = peer
        workload = workloadsByIP[peer.ip].flatMap { $0.identity == peerIdentity ? $0 : nil }
        guard let forwarded else { return }
        guard let claimed = SourceAttribution.forwardedFor(forwarded) else {
            // Unparsable or not an address: a claim we cannot believe either.
            rejectedClaim = String(forwarded.prefix(80))
            return
        }
        if claimed.ip == peer.ip {
            src = claimed
        } else if let peerIdentity, let w = workloadsByIP[claimed.ip], w.identity == peerIdentity {
            src = claimed
            workload = w
        } else {
            rejectedClaim = claimed.description
        }
    }

    /// The first `for=` of a `forwarded` header (RFC 7239): `for="1.2.3.4:5678"` or
    /// `for="[v6]:port"`, in normal form. Nil when there is none or it is not an address.
    static func forwardedFor(_ header: String) -> SocketAddress? {
        forwardedParameter("for", in: header).flatMap { SocketAddress(Substring($0)) }
    }

    /// The first `host=` of a `forwarded` header: the service hostname the client addressed (ztunnel
    /// sends `for="…";host=<hostname>`). Only a claim: a caller matches it against known services.
    static func forwardedHost(_ header: String) -> Substring? {
        forwardedParameter("host", in: header).map { Substring($0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The value of parameter `name` (lower case, matched case-insensitively) in the first
    /// non-empty element of a `forwarded` header, unquoted. Runs once or twice per inbound tunnel,
    /// so it scans bytes: no Foundation trimming, no arrays of pieces.
    static func forwardedParameter(_ name: StaticString, in header: String) -> Substring.UTF8View? {
        let bytes = header.utf8
        guard bytes.count <= 512 else { return nil }
        let key = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        // The first non-empty element (elements are separated by commas).
        var start = bytes.startIndex
        while start != bytes.endIndex && bytes[start] == UInt8(ascii: ",") { start = bytes.index(after: start) }
        let element = bytes[start..<(bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex)]
        var rest = element[...]
        while !rest.isEmpty {
            let end = rest.firstIndex(of: UInt8(ascii: ";")) ?? rest.endIndex
            let pair = rest[rest.startIndex..<end]
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
            guard let eq = pair.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let k = pair[pair.startIndex..<eq].trimmingOWS()
            guard k.count == key.count, k.elementsEqual(key, by: { $0 | 0x20 == $1 }) else { continue }
            var value = pair[pair.index(after: eq)...].trimmingOWS()
            if value.count >= 2, value.first == UInt8(ascii: "\""), value.last == UInt8(ascii: "\"") { value = value.dropFirst().dropLast() }
            return value
        }
        return nil
    }
}
