import Foundation

/// When to ask the Istio CA for each local identity's SVID, as ztunnel does it: at once for a new
/// identity, at half-life of a valid one, after a failure again per identity with a delay doubling
/// from 1 s to 150 s (±20 %) — keeping a still-valid certificate meanwhile — with at most 8 requests
/// in flight. An identity no local workload needs any more is forgotten. Pure: time comes in.
public struct CertificateSchedule<ID: Hashable & Sendable>: Sendable {
    public enum State: Equatable, Sendable {
        /// Never obtained; due at `due`.
        case pending(due: Date)
        case inFlight(validUntil: Date?)
        /// Valid until `notAfter`; renewed from `renewAt`.
        case valid(notAfter: Date, renewAt: Date)
        /// The last request failed; the next one goes at `due`. `validUntil`: a certificate still held.
        case retrying(due: Date, failures: Int, lastError: String, validUntil: Date?)
    }

    public static var maxInFlight: Int { 8 }
    public static var firstRetry: TimeInterval { 1 }
    public static var maxRetry: TimeInterval { 150 }

    public private(set) var states: [ID: State] = [:]

    public init() {}

    /// The identities local workloads need now: new ones are due at once, gone ones forgotten.
    public mutating func want(_ ids: Set<ID>, now: Date) {
        for id in states.keys where !ids.contains(id) {
            states[id] = nil
            failuresInARow[id] = nil
        }
        for id in ids where states[id] == nil { states[id] = .pending(due: now) }
    }

    /// The identities to request now (at most `maxInFlight` in flight), the longest-waiting first;
    /// they are in flight from here until `succeeded` or `failed`.
    public mutating func due(now: Date) -> [ID] {
        var inFlight = 0
        var ready: [(ID, Date, Date?)] = []
        for (id, state) in states {
            switch state {
            case .inFlight: inFlight += 1
            case let .pending(due) where due <= now: ready.append((id, due, nil))
            case let .valid(notAfter, renewAt) where renewAt <= now: ready.append((id, renewAt, notAfter))
            case let .retrying(due, _, _, validUntil) where due <= now: ready.append((id, due, validUntil))
            default: break
            }
        }
        let room = max(0, Self.maxInFlight - inFlight)
        let chosen = ready.sorted { $0.1 < $1.1 }.prefix(room)
        for (id, _, validUntil) in chosen { states[id] = .inFlight(validUntil: validUntil) }
        return chosen.map(\.0)
    }

    /// The CA answered with a certificate valid from `notBefore` to `notAfter`: renewed at half-life.
    public mutating func succeeded(_ id: ID, notBefore: Date, notAfter: Date) {
        guard states[id] != nil else { return }   // forgotten meanwhile
        failuresInARow[id] = nil
        let renewAt = notBefore.addingTimeInterval(notAfter.timeIntervalSince(notBefore) / 2)
        states[id] = .valid(notAfter: notAfter, renewAt: renewAt)
    }

    /// The request failed: try again after the identity's backoff (`jitter` in 0.8...1.2).
    public mutating func failed(_ id: ID, reason: String, now: Date, jitter: Double = 1) {
        guard let state = states[id] else { return }
        var validUntil: Date?
        switch state {
        case let .inFlight(v), let .retrying(_, _, _, v): validUntil = v
        case let .valid(notAfter, _): validUntil = notAfter
        case .pending: break
        }
        if let v = validUntil, v <= now { validUntil = nil }   // never serve past expiry
        let failures = (failuresInARow[id] ?? 0) + 1
        failuresInARow[id] = failures
        let delay = min(Self.maxRetry, Self.firstRetry * pow(2, Double(failures - 1))) * jitter
        states[id] = .retrying(due: now.addingTimeInterval(delay), failures: failures, lastError: reason, validUntil: validUntil)
    }

    /// Failures in a row per identity; a success or forgetting the identity clears them.
    private var failuresInARow: [ID: Int] = [:]

    /// The earliest time something becomes due (nil: nothing scheduled).
    public var nextDue: Date? {
        states.values.compactMap { state -> Date? in
            switch state {
            case let .pending(due): due
            case let .valid(_, renewAt): renewAt
            case let .retrying(due, _, _, _): due
            case .inFlight: nil
            }
        }.min()
    }

    /// Whether `id` has a certificate to serve at `now`.
    public func usable(_ id: ID, now: Date) -> Bool {
        switch states[id] {
        case let .valid(notAfter, _)?: notAfter > now
        case let .inFlight(v?)?, let .retrying(_, _, _, v?)?: v > now
        default: false
        }
    }
}
