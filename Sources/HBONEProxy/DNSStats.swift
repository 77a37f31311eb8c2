import HBONECore
import HBONEConfig
import HBONEDNS

/// One loop's DNS counters, by ztunnel's labels. A lock per query is nothing beside a DNS round
/// trip, and the series stay few (query type × protocol × the client's canonical service).
final class DNSStats: Sendable {
    struct Labels: Hashable, Sendable {
        var queryType: String
        var transport: String
        var canonicalService: String
        var canonicalRevision: String

        init(type: UInt16, transport: DNSTransport, client: Workload?) {
            queryType = DNSType.name(type)
            self.transport = transport.rawValue
            canonicalService = client.map(\.canonicalName).flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
            canonicalRevision = client.map(\.canonicalRevision).flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
        }

        var prometheus: String {
            "request_query_type=\"\(PrometheusText.escaped(queryType))\",request_protocol=\"\(transport)\","
                + "source_canonical_service=\"\(PrometheusText.escaped(canonicalService))\","
                + "source_canonical_revision=\"\(PrometheusText.escaped(canonicalRevision))\""
        }
    }

    struct Counts: Sendable {
        var requests: UInt64 = 0
        var upstreamRequests: UInt64 = 0
        var upstreamFailures: UInt64 = 0
        /// Upstream round trips, in `DNSStats.bounds` (ztunnel's buckets), then sum and count.
        var durationBuckets = [UInt64](repeating: 0, count: DNSStats.bounds.count + 1)
        var durationNanos: UInt64 = 0
    }

    static let bounds: [Double] = [0.0005, 0.001, 0.01, 0.1, 1, 5]

    private let series = Locked<[Labels: Counts]>([:])
    /// Messages not answered as asked, by reason (malformed, not_a_query, unknown_client, overload, upstream, send_failed).
    let problems = ReasonCounts()

    func request(_ labels: Labels) { series.withLock { $0[labels, default: Counts()].requests += 1 } }

    func forwarded(_ labels: Labels) {
        series.withLock {
            $0[labels, default: Counts()].requests += 1
            $0[labels, default: Counts()].upstreamRequests += 1
        }
    }

    func upstreamDone(_ labels: Labels, nanoseconds: UInt64, failed: Bool) {
        let seconds = Double(nanoseconds) / 1e9
        let bucket = DNSStats.bounds.firstIndex { seconds <= $0 } ?? DNSStats.bounds.count
        series.withLock {
            if failed { $0[labels, default: Counts()].upstreamFailures += 1 }
            $0[labels, default: Counts()].durationBuckets[bucket] += 1
            $0[labels, default: Counts()].durationNanos &+= nanoseconds
        }
    }

    var snapshot: [Labels: Counts] { series.withLock { $0 } }
}

/// How a query came in (ztunnel's `request_protocol`).
enum DNSTransport: String, Sendable { case udp, tcp }
