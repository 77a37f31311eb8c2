import Benchmark
import Foundation
import HBONEAuthz
import HBONEBenchFixtures
import HBONECore
import HBONEIdentity
import HBONEDNS
import HBONEProxy

// Each group has a baseline measured in the same run (an empty policy set, a copy of the same
// bytes), so a figure can be read as a ratio on a noisy machine. Malloc counts are exact.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal],
                                           warmupIterations: 10, maxDuration: .seconds(2), maxIterations: 100_000)

    // SPIFFE IDs: parsing an accepted ID and refusing a malformed one; the baseline copies the same bytes.
    let valid = "spiffe://cluster.local/ns/payments/sa/checkout"
    let invalid = "spiffe://Cluster.local/ns/payments/sa/checkout"
    Benchmark("SPIFFE ID: baseline, copy the string's bytes") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Array(valid.utf8)) }
    }
    Benchmark("SPIFFE ID: parse valid") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try SPIFFEID(parsing: valid)) }
    }
    Benchmark("SPIFFE ID: refuse malformed (uppercase trust domain)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? SPIFFEID(parsing: invalid)) }
    }
    let parsed = try! SPIFFEID(parsing: valid)
    Benchmark("SPIFFE ID: write (each tunnel's metric series writes two)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(parsed.description) }
    }

    // Addresses: every inbound tunnel parses its `:authority` and `forwarded` and every outbound
    // one writes them; the baseline copies the same bytes.
    let authority = "127.0.0.20:15008"
    let address = SocketAddress(authority)!
    Benchmark("address: baseline, copy the text's bytes") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Array(authority.utf8)) }
    }
    Benchmark("address: parse ip:port") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(SocketAddress(authority)) }
    }
    Benchmark("address: write ip:port") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(address.description) }
    }

    // Authorization decisions; the baseline is an empty policy set.
    let facts = PolicyFixtures.facts, target = PolicyFixtures.target
    let empty = PolicySet([])
    let ten = PolicyFixtures.ten()
    let tenThousand = PolicyFixtures.tenThousand()
    Benchmark("authz: baseline, no policies") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(empty.decide(facts, for: target)) }
    }
    Benchmark("authz: 10 policies") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ten.decide(facts, for: target)) }
    }
    Benchmark("authz: 10,000 policies over 1,000 namespaces") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(tenThousand.decide(facts, for: target)) }
    }

    // The snapshot's routing tables (workloads by address, services by VIP and hostname, each
    // service's endpoint set) built from nothing, as at start and on a file reload, and changed by
    // one xDS push, against a baseline that only indexes the workloads by uid.
    let meshConfig = try! MeshFixtures.config()
    Benchmark("snapshot: baseline, 10,000 workloads indexed by uid", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        for _ in benchmark.scaledIterations {
            var byUID: [String: Int] = [:]
            for (i, w) in meshConfig.workloads.enumerated() { byUID[w.uid] = i }
            blackHole(byUID)
        }
    }
    Benchmark("snapshot: routing tables of 10,000 workloads and 1,000 services built from nothing (start, file reload)", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! ProxyState(config: meshConfig, trust: MeshFixtures.trust, certificates: [:], version: 1))
        }
    }
    // An xDS push that changed one workload (a pod's health flipping; each iteration flips it
    // back): the kept index is copied, the change applied to it, and the snapshot taken from it.
    let keptIndex = MeshIndex(config: meshConfig)
    var flipped = meshConfig.workloads[5170]
    flipped.status = flipped.status == .healthy ? .unhealthy : .healthy
    let versions = [meshConfig.workloads[5170], flipped]
    Benchmark("snapshot: one workload changed among 10,000 (each xDS push)", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        // The snapshot in use holds the tables while the next push changes them (the loops still
        // route with it), so each change copies the tables it touches, as in the proxy.
        var current = try! ProxyState(config: meshConfig, trust: MeshFixtures.trust, certificates: [:], version: 1, mesh: keptIndex)
        for i in benchmark.scaledIterations {
            var mesh = current.mesh
            mesh.apply(workloads: [(.file(5170), versions[(i + 1) & 1])], services: [])
            current = try! ProxyState(config: meshConfig, trust: MeshFixtures.trust, certificates: [:], version: 1, previous: current, mesh: mesh)
        }
        blackHole(current)
    }

    // Routing a new connection in a mesh of 10,000 workloads (1,000 services of 10): to a service
    // VIP (pick an endpoint, translate the port) against the baseline, a workload IP.
    let mesh = try! MeshFixtures.state()
    let vip = MeshFixtures.vip(517), endpoint = MeshFixtures.endpoint(517)
    Benchmark("destination: baseline, a workload IP among 10,000 workloads") { benchmark in
        for i in benchmark.scaledIterations { blackHole(mesh.resolve(endpoint, hashKey: i)) }
    }
    Benchmark("destination: a service VIP among 10,000 workloads") { benchmark in
        for i in benchmark.scaledIterations { blackHole(mesh.resolve(vip, hashKey: i)) }
    }
    // The same with PreferClose (Failover: network, region, zone, subzone), from a workload in one
    // of the zones: its endpoints ranked by group (6 zones), not one by one.
    let close = try! MeshFixtures.state(loadBalancer: MeshFixtures.preferClose), source = MeshFixtures.workload(4321)
    Benchmark("destination: a PreferClose service VIP among 10,000 workloads, from a workload") { benchmark in
        for i in benchmark.scaledIterations { blackHole(close.resolve(vip, hashKey: i, from: source)) }
    }
    // Kept to the client's node (internalTrafficPolicy: Local): 10 endpoints on 10 nodes, so the
    // client's node's group is looked up by place rather than every node's ranked.
    let nodeLocal = try! MeshFixtures.state(loadBalancer: MeshFixtures.nodeLocal), neighbour = MeshFixtures.workload(5177)
    Benchmark("destination: a node-local service VIP among 10,000 workloads, from a workload on an endpoint's node") { benchmark in
        for i in benchmark.scaledIterations { blackHole(nodeLocal.resolve(vip, hashKey: i, from: neighbour)) }
    }

    // ServiceEntries with CIDR VIPs (1,000 /24 blocks and a /12 over them): an address inside one
    // block (ranked against the /12 that also holds it), and one outside every block (the path of
    // all traffic to addresses the mesh does not know).
    let egress = try! MeshFixtures.state(cidrServices: 1000)
    let inBlock = SocketAddress(ip: IPAddress(MeshFixtures.cidrBlockAddress(517, host: 9))!, port: 443)
    let unknown = SocketAddress(ip: IPAddress("203.0.113.9")!, port: 443)
    Benchmark("destination: an address in a CIDR VIP, 1,001 blocks") { benchmark in
        for i in benchmark.scaledIterations { blackHole(egress.resolve(inBlock, hashKey: i)) }
    }
    Benchmark("destination: an address in no CIDR VIP, 1,001 blocks") { benchmark in
        for i in benchmark.scaledIterations { blackHole(egress.resolve(unknown, hashKey: i)) }
    }

    // The DNS proxy, in the same mesh, for a pod in ns-517: parse the query and write the answer.
    // The baseline answers the full name (one alias, one look-up); the short name a pod usually
    // sends after its resolver appended the search domain takes the alias walk and a CNAME; a name
    // outside the mesh walks every alias and wildcard before it is forwarded.
    func query(_ name: String) -> [UInt8] {
        var q: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") { q.append(UInt8(label.utf8.count)); q += Array(label.utf8) }
        return q + [0, 0, 1, 0, 1]
    }
    let client = mesh.workloadsByIP[MeshFixtures.workload(5170)]
    func answer(_ message: [UInt8]) -> [UInt8]? {
        guard let q = try? DNSQuery(parsing: message) else { return nil }
        guard case let .answer(records) = mesh.resolveDNS(q.name, type: q.type, client: client) else { return q.message(withID: 1) }
        return DNSAnswer.encode(answering: q, code: .noError, authoritative: true, records: records, limit: q.udpLimit)
    }
    let full = query("svc-517.ns-517.svc.cluster.local"), searched = query("svc-517.ns-517.svc.cluster.local.ns-517.svc.cluster.local")
    let outside = query("www.example.com.ns-517.svc.cluster.local")
    Benchmark("dns: baseline, a service's full name") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(answer(full)) }
    }
    Benchmark("dns: a service's short name with the search domain appended (CNAME + A)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(answer(searched)) }
    }
    Benchmark("dns: a name outside the mesh (every alias tried, then forwarded)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(answer(outside)) }
    }

    // One DATA frame each way on an open stream, in memory; the baseline copies the same bytes twice.
    let payload = [UInt8](repeating: 0x61, count: 1024)
    Benchmark("H2 round trip: baseline, copy 1 KiB twice") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Array(payload))
            blackHole(Array(payload))
        }
    }
    Benchmark("H2 round trip: 1 KiB DATA each way, HTTP/2 only", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let pair = try TunnelPair(pki: nil)
        let stream = try pair.openStream()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try payload.withUnsafeBytes { try pair.roundTrip(stream: stream, $0) } }
        benchmark.stopMeasurement()
    }
    let pki = try! InMemoryPKI()
    // Setup (a handshake) runs once per sample, outside the measurement; 1,000 iterations per sample.
    let perSample = Benchmark.Configuration(scalingFactor: .kilo)
    Benchmark("H2 round trip: 1 KiB DATA each way, HTTP/2 over TLS 1.3", configuration: perSample) { benchmark in
        let pair = try TunnelPair(pki: pki)
        let stream = try pair.openStream()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try payload.withUnsafeBytes { try pair.roundTrip(stream: stream, $0) } }
        benchmark.stopMeasurement()
    }

    // One tunnel on an established HBONE connection: CONNECT, 200, one byte each way, END_STREAM
    // both ways, the stream closed on both sides. Malloc (total) is the allocation count of
    // opening and closing one tunnel, client and server together.
    Benchmark("tunnel: open + 1 B each way + close, HTTP/2 only", configuration: perSample) { benchmark in
        let pair = try TunnelPair(pki: nil)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try pair.openAndCloseTunnel() }
        benchmark.stopMeasurement()
    }
    Benchmark("tunnel: open + 1 B each way + close, HTTP/2 over TLS 1.3", configuration: perSample) { benchmark in
        let pair = try TunnelPair(pki: pki)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try pair.openAndCloseTunnel() }
        benchmark.stopMeasurement()
    }

    // A full handshake whose server checks the client's chain against revocation lists (the
    // root's and the client's intermediate's, neither revoking it): every chain-cache miss pays
    // this. Baseline: the same certificates without lists. The test PKI is written by its script.
    let pkiDirectory = NSTemporaryDirectory() + "hbone-micro-pki-\(getpid())"
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../../scripts/gen-test-pki.sh").standardized.path
    let generate = try! Process.run(URL(fileURLWithPath: script), arguments: [pkiDirectory])
    generate.waitUntilExit()
    let filePKI = try! InMemoryPKI(directory: pkiDirectory, serverRevocationLists: nil)
    let filePKIWithLists = try! InMemoryPKI(directory: pkiDirectory, serverRevocationLists: ["root-empty.pem", "east-revokes-checkout.pem"])
    // The lists are in force: the root's list revoking the client's intermediate fails it.
    precondition((try? TunnelPair(pki: InMemoryPKI(directory: pkiDirectory, serverRevocationLists: ["root-revokes-east.pem"]))) == nil)
    try? FileManager.default.removeItem(atPath: pkiDirectory)
    Benchmark("revocation: baseline, mTLS handshake + HTTP/2 prefaces, test PKI, no lists",
              configuration: .init(maxDuration: .seconds(3), maxIterations: 2000)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try TunnelPair(pki: filePKI)) }
    }
    Benchmark("revocation: mTLS handshake + HTTP/2 prefaces, the server checks the client's chain against 2 lists",
              configuration: .init(maxDuration: .seconds(3), maxIterations: 2000)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try TunnelPair(pki: filePKIWithLists)) }
    }

    // A reload (every xDS push, every file event) on a node with 40 local identities whose files
    // did not change: the baseline builds the snapshot from nothing (trust bundle, two TLS
    // contexts per identity), as every reload did before they were kept.
    let reload = try! ReloadFixture(identities: 40)
    let loaded = try! reload.load(previous: nil)
    Benchmark("reload: baseline, 40 local identities built from nothing", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try reload.load(previous: nil)) }
    }
    Benchmark("reload: 40 local identities, no file changed", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try reload.load(previous: loaded)) }
    }

    // A new HBONE connection in memory: full TLS 1.3 mTLS handshake (both sides, no resumption)
    // and the HTTP/2 prefaces and SETTINGS.
    Benchmark("connection: mTLS handshake + HTTP/2 prefaces, both sides in memory",
              configuration: .init(maxDuration: .seconds(3), maxIterations: 2000)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try TunnelPair(pki: pki)) }
    }
}
