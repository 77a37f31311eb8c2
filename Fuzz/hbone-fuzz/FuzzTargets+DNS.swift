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

    /// An upstream resolver's answer to one of the proxy's own lookups (a workload's hostname),
    /// asked for A and for AAAA: whatever the bytes, the addresses kept are of the type asked,
    /// at most `maxAddresses`, and an outcome has a TTL only where it should. Then answers this
    /// proxy writes itself from the same bytes (records for the name asked) read back as written.
    static func dnsAnswer(_ bytes: UnsafeRawBufferPointer) {
        let message = Array(bytes)
        for (type, size) in [(DNSType.a, 4), (DNSType.aaaa, 16)] {
            let query = DNSQuery(asking: lookupName, type: type)
            let read = DNSLookupAnswer(parsing: message, for: query)
            switch read.outcome {
            case let .addresses(list):
                precondition(!list.isEmpty && list.count <= DNSLookupAnswer.maxAddresses && list.allSatisfy { $0.count == size },
                             "a lookup kept \(list.count) addresses, or one of the wrong size")
                precondition(read.ttl != nil && !read.truncated, "addresses without a TTL")
            case .noAddresses:
                precondition(!read.truncated, "a truncated answer read as final")
                precondition(!read.nameDoesNotExist || bytes[3] & 0x0f == 3, "a name read as missing without NXDOMAIN")
            case .failed:
                precondition(read.ttl == nil, "a failure with a TTL")
            }
            precondition(!read.nameDoesNotExist || read.outcome == .noAddresses, "a missing name with an outcome other than no addresses")
        }
        // Written by DNSAnswer: up to 64 A records and a CNAME, from the input's bytes.
        let query = DNSQuery(asking: lookupName, type: DNSType.a)
        let target = DNSName("edge.cdn.test")!
        var records = [DNSRecord(name: lookupName, ttl: UInt32(message.first ?? 0) + 1, data: .cname(target))]
        var chunks = message.dropFirst()
        while chunks.count >= 5, records.count <= 64 {
            let v = chunks.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            records.append(DNSRecord(name: target, ttl: UInt32(chunks[chunks.startIndex + 4]), data: .a(v)))
            chunks = chunks.dropFirst(5)
        }
        let written = DNSAnswer.encode(answering: query, code: .noError, authoritative: false, records: records, limit: 65_535)
        let read = DNSLookupAnswer(parsing: written, for: query)
        let addresses = records.dropFirst().map { r -> [UInt8] in
            guard case let .a(v) = r.data else { return [] }
            return [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
        }
        if addresses.isEmpty {
            precondition(read.outcome == .noAddresses, "an answer without addresses read as \(read.outcome)")
        } else {
            let kept = Array(addresses.prefix(DNSLookupAnswer.maxAddresses))
            let least = min(records[0].ttl, records.dropFirst().prefix(DNSLookupAnswer.maxAddresses).map(\.ttl).min()!)
            precondition(read == DNSLookupAnswer(outcome: .addresses(kept), ttl: least), "a written answer read back as \(read)")
        }
    }

    static let lookupName = DNSName("api.example.test")!

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
