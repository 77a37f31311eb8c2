import Foundation
import HBONECore
import HBONEIdentity
import HBONEEventLoop
import HBONEH2

extension Proxy {
    /// Prometheus text exposition: Istio's TCP metrics and the proxy's own health, summed over loops.
    public func prometheusText(version: String) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += PrometheusText.family(name, type, help) }
        family("istio_build", "gauge", "Istio component build info")
        out += "istio_build{component=\"hbone\",tag=\"\(PrometheusText.escaped(version))\"} 1\n"

        // Per series: opened, closed, failed, received bytes, sent bytes.
        var merged: [TCPLabels: [UInt64]] = [:]
        for stats in statsList {
            for (labels, c) in stats.shard.snapshot {
                let v = [c.opened, c.closed, c.failed, c.received, c.sent].map { $0.load(ordering: .relaxed) }
                merged[labels] = zip(merged[labels] ?? [0, 0, 0, 0, 0], v).map { $0 + $1 }
            }
        }
        let series = merged.sorted { $0.key.prometheus < $1.key.prometheus }
        let tcp = [
            ("istio_tcp_connections_opened_total", "The total number of TCP connections opened"),
            ("istio_tcp_connections_closed_total", "The total number of TCP connections closed"),
            ("istio_tcp_connections_failed_total", "The total number of failed TCP connections"),
            ("istio_tcp_received_bytes_total", "The size of total bytes received during request in case of a TCP connection"),
            ("istio_tcp_sent_bytes_total", "The size of total bytes sent during response in case of a TCP connection"),
        ]
        for (i, (name, help)) in tcp.enumerated() {
            family(name, "counter", help)
            for (labels, v) in series where v[i] > 0 {
                out += "\(name){\(labels.prometheus)} \(v[i])\n"
            }
        }

        out += dnsMetrics()
        family("istio_on_demand_dns_total", "counter", "The total number of requests that used on-demand DNS (unstable)")
        for (labels, n) in Proxy.sum(statsList.map(\.onDemandDNS.snapshot)) { out += "istio_on_demand_dns_total{\(labels)} \(n)\n" }
        family("hbone_on_demand_dns_failures_total", "counter", "Lookups of workloads' hostnames that gave no address for a reason other than the name having none, by reason")
        for (reason, n) in Proxy.sum(statsList.map(\.onDemandDNSFailures.snapshot)) {
            out += "hbone_on_demand_dns_failures_total{reason=\"\(reason)\"} \(n)\n"
        }

        let t = totals
        family("hbone_tunnels_open", "gauge", "Proxied TCP connections open now, by direction")
        let inbound = statsList.reduce(0) { $0 + $1.openInbound.load(ordering: .relaxed) }
        out += "hbone_tunnels_open{direction=\"inbound\"} \(inbound)\n"
        out += "hbone_tunnels_open{direction=\"outbound\"} \(openTunnels - inbound)\n"
        family("hbone_hbone_connections", "gauge", "HBONE (mTLS + HTTP/2) connections open now, by direction")
        out += "hbone_hbone_connections{direction=\"inbound\"} \(t["hbone_connections_inbound"] ?? 0)\n"
        out += "hbone_hbone_connections{direction=\"outbound\"} \(t["hbone_connections_outbound"] ?? 0)\n"
        family("istio_tcp_sockets_open", "gauge", "The current number of open TCP sockets")
        let plaintext = statsList.reduce(0) { $0 + $1.plaintextSocketsInbound.load(ordering: .relaxed) }
        out += "istio_tcp_sockets_open{reporter=\"destination\"} \(max(0, plaintext) + Int(t["hbone_connections_inbound"] ?? 0))\n"
        out += "istio_tcp_sockets_open{reporter=\"source\"} \(max(0, statsList.reduce(0) { $0 + $1.socketsOutbound.load(ordering: .relaxed) }))\n"
        family("hbone_pooled_connections", "gauge", "Outbound HBONE connections in the pool")
        out += "hbone_pooled_connections \(statsList.reduce(0) { $0 + max(0, $1.pooledConnections.load(ordering: .relaxed)) })\n"
        family("hbone_handshakes_total", "counter", "Completed mTLS handshakes")
        out += "hbone_handshakes_total \(t["handshakes"] ?? 0)\n"
        family("hbone_handshake_failures_total", "counter", "Failed mTLS handshakes by reason")
        for (reason, n) in Proxy.sum(statsList.map(\.failureReasons.snapshot)) {
            out += "hbone_handshake_failures_total{reason=\"\(reason)\"} \(n)\n"
        }
        family("hbone_handshake_duration_seconds", "histogram", "Time from TCP accept/connect to a completed handshake")
        var cumulative: UInt64 = 0
        var sum: UInt64 = 0
        let bounds = DurationHistogram.bounds
        for i in 0...bounds.count {
            let n = statsList.reduce(0) { $0 + $1.handshakeDurations.buckets[i].load(ordering: .relaxed) }
            cumulative += n
            let le = i < bounds.count ? String(bounds[i]) : "+Inf"
            out += "hbone_handshake_duration_seconds_bucket{le=\"\(le)\"} \(cumulative)\n"
        }
        for s in statsList { sum += s.handshakeDurations.sumNanos.load(ordering: .relaxed) }
        out += "hbone_handshake_duration_seconds_sum \(Double(sum) / 1e9)\n"
        out += "hbone_handshake_duration_seconds_count \(cumulative)\n"
        family("hbone_certificate_expiration_timestamp_seconds", "gauge", "When each local identity's certificate expires (Unix time)")
        for (id, ctx) in state.identities.sorted(by: { $0.key < $1.key }) {
            out += "hbone_certificate_expiration_timestamp_seconds{identity=\"\(PrometheusText.escaped(id.description))\"} \(Int(ctx.certifiedKey.notAfter.timeIntervalSince1970))\n"
        }
        family("hbone_accept_failures_total", "counter", "Failed accepts by reason (the listener pauses 100 ms to 1 s after each), and listeners that could not be bound (listen, pod_listen)")
        for (reason, n) in Proxy.sum(statsList.map(\.acceptFailures.snapshot)) {
            out += "hbone_accept_failures_total{reason=\"\(reason)\"} \(n)\n"
        }
        family("hbone_h2_protocol_errors_total", "counter", "HTTP/2 protocol errors of peers (we answered with GOAWAY or RST_STREAM), by reason")
        for (reason, n) in Proxy.sum(statsList.map(\.h2ProtocolErrors.snapshot)) {
            out += "hbone_h2_protocol_errors_total{reason=\"\(reason)\"} \(n)\n"
        }
        family("hbone_untrusted_attribution_total", "counter", "Peer claims ignored because the peer may not make them, by header: a forwarded source address, a baggage naming another namespace than the peer's identity")
        out += "hbone_untrusted_attribution_total{header=\"forwarded\"} \(statsList.reduce(0) { $0 + $1.untrustedAttributions.load(ordering: .relaxed) })\n"
        out += "hbone_untrusted_attribution_total{header=\"baggage\"} \(statsList.reduce(0) { $0 + $1.untrustedBaggage.load(ordering: .relaxed) })\n"
        family("hbone_baggage_series", "gauge", "Istio TCP metric series whose labels a peer's baggage named (at most maxBaggageSeries)")
        out += "hbone_baggage_series \(baggageBudget.count)\n"
        family("hbone_baggage_series_refused_total", "counter", "Connections counted without their peer's baggage because maxBaggageSeries series named by baggage were held")
        out += "hbone_baggage_series_refused_total \(statsList.reduce(0) { $0 + $1.baggageSeriesRefused.load(ordering: .relaxed) })\n"
        if state.settings.crlPath != nil {
            family("istio_crl_policy_rejections_total", "counter", "The total number of connections rejected due to CRL certificate revocation (unstable)")
            out += "istio_crl_policy_rejections_total{reporter=\"destination\"} \(statsList.reduce(0) { $0 + $1.revokedAsServer.load(ordering: .relaxed) })\n"
            out += "istio_crl_policy_rejections_total{reporter=\"source\"} \(statsList.reduce(0) { $0 + $1.revokedAsClient.load(ordering: .relaxed) })\n"
            family("istio_crl_untracked_connections_total", "counter", "The total number of connections not tracked for CRL enforcement (unstable)")
            out += "istio_crl_untracked_connections_total{reporter=\"destination\"} \(statsList.reduce(0) { $0 + $1.crlUntrackedAsServer.load(ordering: .relaxed) })\n"
            out += "istio_crl_untracked_connections_total{reporter=\"source\"} \(statsList.reduce(0) { $0 + $1.crlUntrackedAsClient.load(ordering: .relaxed) })\n"
        }
        family("hbone_config_reload_failures_total", "counter", "Reloads refused (the last good config stays in force; /config_dump shows why)")
        out += "hbone_config_reload_failures_total \(reloadFailures.load(ordering: .relaxed))\n"
        family("hbone_config_reparses_total", "counter", "Times the config file was parsed again after start (an unchanged file is not)")
        out += "hbone_config_reparses_total \(reparses.load(ordering: .relaxed))\n"
        family("hbone_log_lines_dropped_total", "counter", "Log lines dropped because stderr did not keep up (logging never blocks a loop)")
        out += "hbone_log_lines_dropped_total \(log.droppedLines)\n"
        family("hbone_bugs_total", "counter", "Impossible states reached (each also logged as BUG:)")
        out += "hbone_bugs_total \(Bug.count.load(ordering: .relaxed))\n"
        family("process_open_fds", "gauge", "Open file descriptors")
        out += "process_open_fds \((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0)\n"
        family("hbone_heap_in_use_bytes", "gauge", "Heap bytes allocated and not freed (glibc mallinfo2, plus HTTP/2 frame buffers on their own pages), unlike RSS free of fragmentation")
        out += "hbone_heap_in_use_bytes \(heapInUse)\n"
        family("hbone_h2_frame_buffer_bytes", "gauge", "HTTP/2 frame-buffer pages in use or pooled; an idle connection's are given back to the kernel")
        out += "hbone_h2_frame_buffer_bytes \(H2Session.frameBufferBytes)\n"
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes")
        out += "process_resident_memory_bytes \(Proxy.residentBytes())\n"
        for source in attachedStatus { out += source.prometheusText() }
        return out
    }

    /// ztunnel's DNS series (the same names, labels and buckets), and why queries were not answered.
    private func dnsMetrics() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += PrometheusText.family(name, type, help) }
        var merged: [DNSStats.Labels: DNSStats.Counts] = [:]
        for stats in statsList {
            for (labels, c) in stats.dns.snapshot {
                var m = merged[labels] ?? DNSStats.Counts()
                m.requests += c.requests
                m.upstreamRequests += c.upstreamRequests
                m.upstreamFailures += c.upstreamFailures
                m.durationBuckets = zip(m.durationBuckets, c.durationBuckets).map { $0 + $1 }
                m.durationNanos &+= c.durationNanos
                merged[labels] = m
            }
        }
        let series = merged.sorted { $0.key.prometheus < $1.key.prometheus }
        let counters: [(String, String, KeyPath<DNSStats.Counts, UInt64>)] = [
            ("istio_dns_requests_total", "Total number of DNS requests (unstable)", \.requests),
            ("istio_dns_upstream_requests_total", "Total number of DNS requests forwarded to upstream (unstable)", \.upstreamRequests),
            ("istio_dns_upstream_failures_total", "Total number of DNS requests that failed to forward upstream (unstable)", \.upstreamFailures),
        ]
        for (name, help, field) in counters {
            family(name, "counter", help)
            for (labels, c) in series where c[keyPath: field] > 0 { out += "\(name){\(labels.prometheus)} \(c[keyPath: field])\n" }
        }
        let histogram = "istio_dns_upstream_request_duration_seconds"
        family(histogram, "histogram", "Total time in seconds Istio takes to get DNS response from upstream (unstable)")
        for (labels, c) in series where c.upstreamRequests > 0 {
            var cumulative: UInt64 = 0
            for (i, n) in c.durationBuckets.enumerated() {
                cumulative += n
                let le = i < DNSStats.bounds.count ? String(DNSStats.bounds[i]) : "+Inf"
                out += "\(histogram)_bucket{\(labels.prometheus),le=\"\(le)\"} \(cumulative)\n"
            }
            out += "\(histogram)_sum{\(labels.prometheus)} \(Double(c.durationNanos) / 1e9)\n"
            out += "\(histogram)_count{\(labels.prometheus)} \(cumulative)\n"
        }
        family("hbone_dns_problems_total", "counter", "DNS messages not answered as asked, by reason (malformed, not_a_query, unknown_client, overload, upstream, send_failed)")
        for (reason, n) in Proxy.sum(statsList.map(\.dns.problems.snapshot)) {
            out += "hbone_dns_problems_total{reason=\"\(reason)\"} \(n)\n"
        }
        return out
    }

    /// Per-loop reason counts summed, in a stable order.
    static func sum(_ counts: [[String: UInt64]]) -> [(String, UInt64)] {
        var total: [String: UInt64] = [:]
        for c in counts { for (k, v) in c { total[k, default: 0] += v } }
        return total.sorted { $0.key < $1.key }
    }

    /// Heap bytes allocated and not freed (glibc mallinfo2), plus the HTTP/2 frame buffers that
    /// live on pages of their own (H2FrameBufferMemory) while they are not given back.
    public var heapInUse: UInt64 { Socket.heapInUse() + UInt64(H2Session.frameBufferBytes) }

    public static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 0
    }

    /// What keeps the proxy from being ready; empty when ready.
    public var readinessPending: [String] {
        var pending: [String] = []
        if !started.load(ordering: .relaxed) { pending.append("listeners are not bound yet") }
        let s = state
        let now = Date()
        for w in s.config.certifiedLocalWorkloads {
            if let current = s.identities[w.identity] {
                // The last valid SVID ran out and nothing valid replaced it: degraded.
                if current.certifiedKey.notAfter <= now {
                    pending.append("certificate for \(w.identity) expired at \(current.certifiedKey.notAfter) (workload \(w.namespace)/\(w.name))")
                }
            } else {
                let why = s.certificateProblems[w.identity].map { ": \($0)" } ?? ""
                pending.append("no usable certificate for \(w.identity) (workload \(w.namespace)/\(w.name))\(why)")
            }
        }
        for source in attachedStatus { pending += source.readinessPending }
        return pending
    }
}
