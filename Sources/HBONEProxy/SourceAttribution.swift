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
        guard header.utf8.count <= 512 else { return nil }
        for element in header.split(separator: ",").prefix(1) {
            for pair in element.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "for" else { continue }
                var value = Substring(kv[1].trimmingCharacters(in: .whitespaces))
                if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = value.dropFirst().dropLast() }
                return SocketAddress(value)
            }
        }
        return nil
    }
}

import Foundation
