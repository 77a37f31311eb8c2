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
        forwardedParameter("for", in: header).flatMap { SocketAddress($0) }
    }

    /// The first `host=` of a `forwarded` header: the service hostname the client addressed (ztunnel
    /// sends `for="…";host=<hostname>`). Only a claim: a caller matches it against known services.
    static func forwardedHost(_ header: String) -> Substring? {
        forwardedParameter("host", in: header).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The value of parameter `name` (lower case, matched case-insensitively) in the first
    /// non-empty element of a `forwarded` header, unquoted. Runs once or twice per inbound tunnel,
    /// so it scans the bytes by offset: walking String.UTF8View indices made it about 4 % of an
    /// inbound tunnel's instructions (scripts/bench-tunnel-cost.sh).
    static func forwardedParameter(_ name: StaticString, in header: String) -> Substring? {
        let utf8 = header.utf8
        guard utf8.count <= 512 else { return nil }
        let found = utf8.withContiguousStorageIfAvailable { valueRange(of: name, in: $0) }
        guard let range = found ?? Array(utf8).withUnsafeBufferPointer({ valueRange(of: name, in: $0) }) else { return nil }
        // Every bound sits next to an ASCII delimiter, quote or space, so on a scalar boundary.
        let start = utf8.index(utf8.startIndex, offsetBy: range.lowerBound)
        return Substring(utf8[start..<utf8.index(start, offsetBy: range.count)])
    }

    /// Byte offsets of `forwardedParameter`'s value in `b`.
    private static func valueRange(of name: StaticString, in b: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let key = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        func trimmed(_ r: Range<Int>) -> Range<Int> {
            let t = b[r].trimmingOWS()
            return t.startIndex..<t.endIndex
        }
        // The first non-empty element (elements are separated by commas).
        var start = 0
        while start < b.count && b[start] == UInt8(ascii: ",") { start += 1 }
        var elementEnd = start
        while elementEnd < b.count && b[elementEnd] != UInt8(ascii: ",") { elementEnd += 1 }
        // Its `key=value` pairs, separated by semicolons.
        var pairStart = start
        while pairStart < elementEnd {
            var pairEnd = pairStart
            while pairEnd < elementEnd && b[pairEnd] != UInt8(ascii: ";") { pairEnd += 1 }
            defer { pairStart = pairEnd + 1 }
            var eq = pairStart
            while eq < pairEnd && b[eq] != UInt8(ascii: "=") { eq += 1 }
            guard eq < pairEnd else { continue }
            let k = trimmed(pairStart..<eq)
            guard k.count == key.count, zip(k, key).allSatisfy({ b[$0] | 0x20 == $1 }) else { continue }
            var value = trimmed(eq + 1..<pairEnd)
            if value.count >= 2, b[value.lowerBound] == UInt8(ascii: "\""), b[value.upperBound - 1] == UInt8(ascii: "\"") {
                value = value.lowerBound + 1..<value.upperBound - 1
            }
            return value
        }
        return nil
    }
}
