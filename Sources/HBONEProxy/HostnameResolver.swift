import Foundation
import HBONECore
import HBONEConfig
import HBONEDNS
import HBONEEventLoop

/// ztunnel's on-demand DNS, one per loop: a workload known by its hostname only (a ServiceEntry
/// endpoint with `resolution: DNS`) is looked up when a connection picks it. Asked of
/// `hbone.dns.upstreams`, else of the nameservers of `dns.resolvConf` (/etc/resolv.conf), from
/// the proxy's own network namespace (as ztunnel's resolver). That file's search list and `ndots`
/// apply as they do to ztunnel's (`ResolvConf.candidates`): the names are asked in turn until one
/// has an address; an error answer or no answer ends the lookup.
///
/// For each name, the family of the connection's original destination is asked first; the other
/// only if the name has none (and IPv6 is enabled), as ztunnel prefers. Answers are kept for their
/// TTL (`HostnameCache`), per name asked; connections that need a name already being looked up
/// wait for that lookup.
final class HostnameResolver {
    enum Outcome: Equatable {
        case addresses([IPAddress])
        /// Why there is no address to connect to.
        case failed(String)
    }

    /// One family's outcome.
    private enum Found {
        case entry(HostnameCache.Entry)
        case failed(String)
    }

    private unowned let worker: Worker
    private(set) var cache = HostnameCache()
    /// Lookups on the wire, and who waits for each.
    private var waiting: [HostnameCache.Key: [(Found) -> Void]] = [:]
    private var forwards: [ObjectIdentifier: DNSForward] = [:]
    /// `dns.resolvConf` as last read, when, and from which path.
    private var system: (conf: ResolvConf, path: String, readAt: UInt64)?
    /// `istio_on_demand_dns_total`'s label text by source workload and hostname, written once
    /// (about 2.7 % of the proxy's CPU at 4,000 connections/s when written per connection).
    private var labelText: [LabelKey: (source: Workload?, text: String)] = [:]

    private struct LabelKey: Hashable {
        let source: String?
        let hostname: String
    }

    /// Lookups on the wire at once, per loop: past this, a connection fails at once.
    static let maxInFlight = 256
    /// /etc/resolv.conf is read again after this long (nanoseconds).
    static let resolvConfRefresh: UInt64 = 30_000_000_000

    init(worker: Worker) { self.worker = worker }

    /// Calls `done` once on this loop: at once from the cache, else when the upstream answers (or
    /// both tries fail, within `2 × dns.upstreamTimeout`).
    func lookup(_ hostname: String, preferIPv6: Bool, _ done: @escaping (Outcome) -> Void) {
        let names = resolvConf().candidates(for: hostname)
        func attempt(_ i: Int) {
            name(names[i], preferIPv6: preferIPv6) { found in
                switch found {
                case .entry(.noAddresses), .entry(.noName): break
                default: return done(Self.outcome(found))
                }
                guard i + 1 < names.count else {
                    return done(.failed(names.count == 1 ? "the name has no address"
                                                          : "the name has no address (asked as \(names.joined(separator: ", ")))"))
                }
                attempt(i + 1)
            }
        }
        attempt(0)
    }

    /// One name: the preferred family, then the other if it has none (not when the name does not
    /// exist at all).
    private func name(_ name: String, preferIPv6: Bool, _ done: @escaping (Found) -> Void) {
        let ipv6 = worker.state.settings.ipv6Enabled
        let first = preferIPv6 && ipv6
        family(name, ipv6: first) { [unowned self] found in
            guard case .entry(.noAddresses) = found, ipv6 else { return done(found) }
            family(name, ipv6: !first, done)
        }
    }

    private static func outcome(_ found: Found) -> Outcome {
        switch found {
        case let .entry(.addresses(list)): .addresses(list)
        case .entry(.noAddresses), .entry(.noName): .failed("the name has no address")
        case let .failed(why): .failed(why)
        }
    }

    /// The series `source`'s connections to `hostname` count in, written again only when the
    /// source workload changed (`==` is one pointer comparison while the snapshot keeps it).
    func labels(source: Workload?, hostname: String) -> String {
        let key = LabelKey(source: source?.uid, hostname: hostname)
        if let kept = labelText[key], kept.source == source { return kept.text }
        if labelText.count >= HostnameCache.defaultCapacity { labelText = [:] }
        let text = Worker.onDemandDNSLabels(source: source, hostname: hostname)
        labelText[key] = (source, text)
        return text
    }

    /// Ends every lookup on the wire (the drain deadline); nobody is called back.
    func cancelAll() {
        for f in forwards.values { f.cancel() }
        forwards = [:]
        waiting = [:]
    }

    private func family(_ hostname: String, ipv6: Bool, _ done: @escaping (Found) -> Void) {
        let key = HostnameCache.Key(hostname, ipv6: ipv6)
        if let entry = cache.lookup(key, now: worker.loop.now) { return done(.entry(entry)) }
        if waiting[key] != nil {
            waiting[key]!.append(done)
            return
        }
        guard let name = DNSName(key.name) else { return done(.failed("not a DNS name")) }
        guard forwards.count < Self.maxInFlight else {
            worker.stats.onDemandDNSFailures.add("overload")
            return done(.failed("\(forwards.count) lookups already in flight on this loop"))
        }
        waiting[key] = [done]
        send(DNSQuery(asking: name, type: ipv6 ? DNSType.aaaa : DNSType.a), for: key, over: .udp)
    }

    private func send(_ query: DNSQuery, for key: HostnameCache.Key, over transport: DNSTransport) {
        let settings = worker.state.settings
        let route = DNSForward.Route(upstreams: upstreams(settings), namespace: nil, mark: settings.packetMark,
                                     timeout: settings.dns.upstreamTimeout.nanoseconds)
        let forward = DNSForward(query: query, transport: transport, route: route, loop: worker.loop, network: worker.network) {
            [unowned self] f, answer, why in
            forwards[ObjectIdentifier(f)] = nil
            guard let answer else {
                worker.stats.onDemandDNSFailures.add("no_answer")
                return finish(key, .failed("no answer: \(why ?? "unknown")"))
            }
            let read = DNSLookupAnswer(parsing: answer, for: f.query)
            // Too big for a datagram (a long list of addresses): asked again over TCP.
            if read.truncated && transport == .udp { return send(query, for: key, over: .tcp) }
            switch read.outcome {
            case let .addresses(raw):
                let list = raw.compactMap { IPAddress(networkBytes: $0) }
                cache.store(.addresses(list), for: key, ttl: read.ttl, now: worker.loop.now)
                finish(key, .entry(.addresses(list)))
            case .noAddresses:
                let entry: HostnameCache.Entry = read.nameDoesNotExist ? .noName : .noAddresses
                cache.store(entry, for: key, ttl: read.ttl, now: worker.loop.now)
                finish(key, .entry(entry))
            case let .failed(why):
                worker.stats.onDemandDNSFailures.add(read.truncated ? "truncated" : "error_answer")
                finish(key, .failed("the upstream's answer: \(why)"))
            }
        }
        forwards[ObjectIdentifier(forward)] = forward
        forward.start()
    }

    private func finish(_ key: HostnameCache.Key, _ found: Found) {
        for done in waiting.removeValue(forKey: key) ?? [] { done(found) }
    }

    /// The configured upstreams, else the resolv.conf's nameservers.
    private func upstreams(_ settings: Settings) -> [SocketAddress] {
        settings.dns.upstreams.isEmpty ? resolvConf().nameservers : settings.dns.upstreams
    }

    /// `dns.resolvConf`, read again now and then (so an edited file is seen without a restart). A
    /// file that cannot be read is an empty one: no nameservers, no search list.
    private func resolvConf() -> ResolvConf {
        let path = worker.state.settings.dns.resolvConf, now = worker.loop.now
        if let s = system, s.path == path, now &- s.readAt < Self.resolvConfRefresh { return s.conf }
        let conf = ResolvConf(parsing: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        system = (conf, path, now)
        return conf
    }
}
