import Testing
import HBONEIdentity
@testable import HBONEConfig

/// The `baggage` header as ztunnel writes and reads it.
@Suite struct BaggageTests {
    @Test func aWorkloadSaysWhoItIs() throws {
        let w = Workload(uid: "c/payments/checkout-0", name: "checkout-0", namespace: "payments", serviceAccount: "checkout",
                         trustDomain: "cluster.local", workloadIps: [], protocol: .hbone, node: "east", clusterId: "east-1",
                         workloadName: "checkout", canonicalName: "checkout", canonicalRevision: "v2", labels: [:], services: [:],
                         identity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout"),
                         locality: Locality(region: "eu-west", zone: "eu-west-1a", subzone: ""), workloadType: "cronjob")
        #expect(Baggage(w).headerValue(workloadType: w.workloadType)
                == "k8s.cluster.name=east-1,k8s.namespace.name=payments,k8s.cronjob.name=checkout,service.name=checkout,service.version=v2,cloud.region=eu-west,cloud.availability_zone=eu-west-1a")
        // Empty fields are left out, not sent empty.
        var bare = w
        bare.locality = Locality()
        bare.canonicalRevision = ""
        #expect(Baggage(bare).headerValue(workloadType: "deployment")
                == "k8s.cluster.name=east-1,k8s.namespace.name=payments,k8s.deployment.name=checkout,service.name=checkout")
    }

    @Test func parsedAsZtunnelReadsIt() {
        let b = Baggage(parsing: ["k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,service.name=N2,service.version=V1"])
        #expect(b == Baggage(clusterId: "K1", namespace: "NS1", workloadName: "N1", serviceName: "N2", revision: "V1"))
        // Empty values are absent; every workload type names the workload; unknown keys, entries
        // without `=`, W3C properties and spaces around entries are skipped.
        let c = Baggage(parsing: ["k8s.cluster.name=,k8s.namespace.name= NS2 ,k8s.job.name=J;prop=1,other=x,junk",
                                  "cloud.region=r1,cloud.availability_zone=z1,k8s.pod.name=P"])
        #expect(c == Baggage(namespace: "NS2", workloadName: "P", region: "r1", zone: "z1"))
        // Spaces before the properties are not part of the value (found by the fuzzer: it did not
        // survive being written and read again).
        #expect(Baggage(parsing: ["service.name=checkout ;p=1"]).serviceName == "checkout")
        #expect(Baggage(parsing: []).isEmpty && Baggage(parsing: [""]).isEmpty && Baggage(parsing: [",,,=,"]).isEmpty)
    }

    /// A label value, not a place for a peer to park bytes: too long or with control characters, absent.
    @Test func hostileValuesAreDropped() {
        let long = String(repeating: "a", count: Baggage.maxValueBytes + 1)
        let b = Baggage(parsing: ["k8s.namespace.name=\(long),service.name=ok\u{1}x,service.version=\(String(repeating: "v", count: Baggage.maxValueBytes))"])
        #expect(b.namespace == nil && b.serviceName == nil && b.revision?.utf8.count == Baggage.maxValueBytes)
    }

    @Test func theFileNamesTheWorkloadType() throws {
        let yaml = """
            workloads:
            - {name: job-0, namespace: batch, workloadIps: ["10.0.0.9"], protocol: HBONE, node: east, workloadType: Job}
            - {name: web-0, namespace: shop, workloadIps: ["10.0.0.8"], protocol: HBONE, node: east}
            hbone:
              node: east
              rootCertificates: /unused
              certificates: {directory: /unused}
            """
        let c = try ProxyConfig.parse(yaml: yaml, file: "t.yaml", environment: [:])
        #expect(c.workloads.map(\.workloadType) == ["job", "deployment"])
        #expect(c.settings.responseBaggage)
        #expect(try !ProxyConfig.parse(yaml: yaml, file: "t.yaml", environment: ["ENABLE_RESPONSE_BAGGAGE": "false"]).settings.responseBaggage)
        do {
            _ = try ProxyConfig.parse(yaml: yaml.replacingOccurrences(of: "workloadType: Job", with: "workloadType: statefulset"), file: "t.yaml", environment: [:])
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("t.yaml:2") && "\(error)".contains("must be deployment, cronjob, pod or job"), "\(error)")
        }
    }

    /// The bound on series named by baggage: 4096 unless set, 0 allowed (baggage then names no
    /// series), anything else out of range refused with its file and line.
    @Test func theBaggageSeriesBoundIsReadAndChecked() throws {
        let yaml = """
            hbone:
              node: east
              rootCertificates: /unused
              certificates: {directory: /unused}
            """
        #expect(try ProxyConfig.parse(yaml: yaml, file: "t.yaml", environment: [:]).settings.maxBaggageSeries == 4096)
        #expect(try ProxyConfig.parse(yaml: yaml + "\n  maxBaggageSeries: 0", file: "t.yaml", environment: [:]).settings.maxBaggageSeries == 0)
        #expect(try ProxyConfig.parse(yaml: yaml + "\n  maxBaggageSeries: 250", file: "t.yaml", environment: [:]).settings.maxBaggageSeries == 250)
        for bad in ["-1", "1000001", "many"] {
            do {
                _ = try ProxyConfig.parse(yaml: yaml + "\n  maxBaggageSeries: \(bad)", file: "t.yaml", environment: [:])
                Issue.record("accepted \(bad)")
            } catch {
                #expect("\(error)".contains("t.yaml:5") && "\(error)".contains("maxBaggageSeries"), "\(error)")
            }
        }
    }
}
