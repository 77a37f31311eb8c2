import Testing
@testable import HBONEProxy

/// Label values from config or istiod are escaped, so hostile names cannot break or forge a series.
@Suite struct PrometheusTextTests {
    @Test(arguments: [("ledger-0", "ledger-0"), ("a\"b", "a\\\"b"), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb"),
                      ("\"} 1\nistio_forged{x=\"", "\\\"} 1\\nistio_forged{x=\\\""), ("café", "café")])
    func valuesAreEscaped(raw: String, escaped: String) {
        #expect(PrometheusText.escaped(raw) == escaped)
    }

    @Test func aHostileWorkloadNameStaysInsideItsLabel() {
        let hostile = "x\"} 999\nistio_tcp_connections_opened_total{reporter=\"forged"
        let labels = TCPLabels(reporter: "destination", sourcePrincipal: "p", sourceWorkload: hostile, sourceNamespace: "n",
                               sourceCluster: "c", destinationPrincipal: "p", destinationWorkload: "w", destinationNamespace: "n",
                               destinationService: "s", destinationCluster: "c", responseFlags: "-", securityPolicy: "mutual_tls")
        let text = labels.prometheus
        #expect(!text.contains("\n"))
        // Every unescaped quote opens or closes one of the label values.
        var quotes = 0
        var escaped = false
        for c in text {
            if escaped { escaped = false; continue }
            if c == "\\" { escaped = true } else if c == "\"" { quotes += 1 }
        }
        #expect(quotes == 2 * TCPLabels.labelCount)
    }

    /// The series' hash leaves some labels out; series that differ only in one of those are
    /// still counted apart, and the same labels find the same series.
    @Test func seriesThatDifferOnlyInALabelTheHashLeavesOutStayApart() {
        func labels(_ change: (inout TCPLabels) -> Void = { _ in }) -> TCPLabels {
            var l = TCPLabels(reporter: "destination", sourcePrincipal: "p", sourceWorkload: "w", sourceNamespace: "n",
                              sourceCluster: "c", destinationPrincipal: "q", destinationWorkload: "v", destinationNamespace: "m",
                              destinationService: "s", destinationCluster: "d", responseFlags: "-", securityPolicy: "mutual_tls")
            change(&l)
            return l
        }
        let variants = [labels(), labels { $0.sourceCluster = "other" }, labels { $0.destinationNamespace = "other" },
                        labels { $0.sourceCanonicalRevision = "v2" }, labels { $0.destinationServiceName = "other" },
                        labels { $0.securityPolicy = "unknown" }, labels { $0.destinationPrincipal = "other" }]
        let shard = MetricsShard()
        let counters = variants.map { shard.counters($0) }
        for (i, a) in counters.enumerated() {
            for b in counters[(i + 1)...] { #expect(a !== b) }
        }
        #expect(shard.counters(labels()) === counters[0])
        #expect(shard.counters(labels { $0.sourceCluster = "other" }) === counters[1])
        #expect(shard.snapshot.count == variants.count)
    }
}
