import HBONECore
import HBONEConfig
import HBONEDNS
import HBONEProxy
import HBONETLS

/// A DNS message from a pod: parsed, answered from a mesh with every kind of name the proxy
/// answers (a service, a headless one, a wildcard, one visible to its namespace only), from a
/// client it knows and one it does not, and written back. The answer must be one the client takes
/// as the answer to its query, and fit the client's size.
extension FuzzTargets {
    static func dns(_ bytes: UnsafeRawBufferPointer) {
        let message = Array(bytes)
        let query: DNSQuery
        do {
            query = try DNSQuery(parsing: message)
        } catch {
            if let answer = DNSAnswer.encode(rejecting: error) {
                precondition(message.count >= 12 && answer.count == 12 && answer[0] == message[0] && answer[1] == message[1],
                             "a rejection does not answer the message's ID")
            }
            return
        }
        if let key = query.name.key { precondition(DNSName(key)?.key == key, "a name's key does not round-trip: \(key)") }
        for client in [nil, dnsState.workloadsByIP[IPAddress("10.0.0.1")!]] {
            for rotate in [0, 1, Int.min] {
                let records: [DNSRecord]
                switch dnsState.resolveDNS(query.name, type: query.type, client: client, rotate: rotate) {
                case .forward: continue
                case let .answer(r): records = r
                }
                for limit in [query.udpLimit, 65_535] {
                    let answer = DNSAnswer.encode(answering: query, code: .noError, authoritative: true, records: records, limit: limit)
                    precondition(answer.count <= limit, "an answer of \(answer.count) bytes exceeds the client's \(limit)")
                    precondition(query.isAnswered(by: answer, id: query.id), "an answer is not taken as answering its query")
                }
            }
        }
    }

    static let dnsState: ProxyState = {
        let config = try! ProxyConfig.parse(yaml: """
            workloads:
            - {name: client, namespace: payments, workloadIps: ["10.0.0.1"], protocol: HBONE, node: node-a}
            - {name: db-0, namespace: payments, workloadIps: ["10.1.0.1", "fd00::1"], protocol: HBONE, node: b, services: {"payments/db.payments.svc.cluster.local": {5432: 5432}}}
            - {name: db-1, namespace: payments, workloadIps: ["10.1.0.2"], protocol: HBONE, node: b, services: {"payments/db.payments.svc.cluster.local": {5432: 5432}}}
            services:
            - {name: ledger, namespace: payments, vips: ["10.96.0.10", "fd00::10"], ports: {"80": 8080}}
            - {name: db, namespace: payments, ports: {"5432": 5432}}
            - {name: wild, namespace: shop, hostname: "*.example.com", vips: ["240.240.0.5"], ports: {"443": 443}}
            - {name: private, namespace: shop, hostname: private.shop.svc.cluster.local, vips: ["10.96.0.11"], ports: {"80": 80}, visibility: Namespace}
            hbone:
              node: node-a
              rootCertificates: /unused
              certificates: {directory: /unused}
            """, file: "fuzz.yaml", environment: [:])
        return try! ProxyState(config: config, trust: xdsTrust, certificates: [:], version: 1)
    }()
}
