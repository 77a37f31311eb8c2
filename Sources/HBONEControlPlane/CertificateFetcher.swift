import Foundation
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEGRPC
import HBONEH2
import HBONEIdentity
import HBONETLS
import HBONEXDS
import HBONEXDSProto
import SwiftProtobuf

/// The SVIDs of local workloads from the Istio CA, as ztunnel gets them: for each identity a fresh
/// P-256 key and CSR, `CreateCertificate` with `ImpersonatedIdentity`, the answer checked (exactly
/// that identity, that key, a chain to a trusted root) before it is served, renewal at half-life,
/// per-identity backoff after failures while a still-valid certificate is kept, never past expiry.
/// Runs on the control-plane loop; `CertificateSchedule` decides when.
final class CertificateFetcher {
    static let path = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
    /// A CA call that has not answered after this long is given up (and retried with backoff).
    static let callTimeout: Duration = .seconds(30)

    struct Issued: Sendable {
        var keys: [SPIFFEID: CertifiedKey]
        /// Roots from the CA's answers (used when no root file is configured).
        var roots: [Certificate]
        /// Why each identity without a certificate has none.
        var problems: [SPIFFEID: String]
    }

    let loop: EventLoop
    let settings: ControlPlaneSettings
    let tls: ControlPlaneTLSContext
    let network: StreamNetwork
    /// The configured root file's bundle; nil: trust the roots the CA returns.
    let configuredTrust: TrustBundle?
    var onChange: (Issued) -> Void = { _ in }
    var report: ((inout ControlPlaneStatus) -> Void) -> Void = { _ in }

    private var schedule = CertificateSchedule<SPIFFEID>()
    private var keys: [SPIFFEID: CertifiedKey] = [:]
    private var roots: [Certificate] = []
    private var channel: GRPCChannel?
    private var timer: EventLoop.TimerID?
    private var timerDue: Date?
    private var rng = SystemRandomNumberGenerator()
    private var stopped = false

    init(loop: EventLoop, settings: ControlPlaneSettings, tls: ControlPlaneTLSContext, network: StreamNetwork, configuredTrust: TrustBundle?) {
        self.loop = loop
        self.settings = settings
        self.tls = tls
        self.network = network
        self.configuredTrust = configuredTrust
    }

    func stop() {
        stopped = true
        loop.cancel(timer)
        channel?.close("shutting down")
    }

    /// The identities local HBONE workloads need now.
    func want(_ identities: Set<SPIFFEID>) {
        let before = Set(keys.keys)
        schedule.want(identities, now: Date())
        for id in keys.keys where !identities.contains(id) {
            keys[id] = nil
            log.info("certificate dropped: no local workload needs it", ["identity": id.description])
        }
        if Set(keys.keys) != before { publish() }
        run()
    }

    /// Starts what is due and arms the timer for the next thing due (a request or an expiry).
    private func run() {
        guard !stopped else { return }
        let now = Date()
        var expired = false
        for (id, key) in keys where key.notAfter <= now {
            keys[id] = nil
            expired = true
            log.warn("certificate expired and could not be renewed", ["identity": id.description])
        }
        for id in schedule.due(now: now) { request(id) }
        if expired { publish() }
        reportStates()
        let next = ([schedule.nextDue] + keys.values.map { Optional($0.notAfter) }).compactMap { $0 }.min()
        guard let next, next != timerDue else { return }
        loop.cancel(timer)
        timerDue = next
        let delay = max(0, next.timeIntervalSinceNow)
        timer = loop.schedule(after: UInt64(delay * 1e9) + 1_000_000) { [weak self] in
            self?.timerDue = nil
            self?.run()
        }
    }

    private func caChannel() -> GRPCChannel {
        if let channel, !channel.isClosed { return channel }
        let channel = GRPCChannel(loop: loop, target: .init(endpoint: settings.caAddress, tls: tls, alternativeName: settings.altCAHostname ?? settings.altXDSHostname),
                                  network: network)
        channel.connectTimeout = settings.connectTimeout
        channel.keepaliveInterval = settings.keepaliveInterval
        channel.start()
        self.channel = channel
        return channel
    }

    private func request(_ id: SPIFFEID) {
        let token: String
        switch ServiceAccountToken.read(settings.authToken) {
        case let .success(t): token = t
        case let .failure(error):
            failed(id, outcome: "no_token", reason: error.description)
            return
        }
        let csr: CertificateRequest
        do { csr = try CertificateRequest(for: id) } catch {
            failed(id, outcome: "csr_failed", reason: "cannot build the CSR: \(error.reason)")
            return
        }
        var message = Istio_V1_Auth_IstioCertificateRequest()
        message.csr = csr.pem
        message.validityDuration = Int64(settings.secretTTL.components.seconds)
        message.metadata = Google_Protobuf_Struct(fields: ["ImpersonatedIdentity": Google_Protobuf_Value(stringValue: id.description)])
        let bytes: [UInt8]
        do { bytes = try message.serializedBytes() as [UInt8] } catch {
            failed(id, outcome: "csr_failed", reason: "cannot encode the request: \(error)")
            return
        }
        let ca = settings.caAddress
        let head = GRPCRequestHead(path: CertificateFetcher.path, authority: "\(ca.host):\(ca.port)", token: token,
                                   clusterID: settings.clusterID, extra: settings.caHeaders.map { ($0.name, $0.value) })
        var answer: [UInt8]?
        var deadline: EventLoop.TimerID?
        let call = caChannel().call(headers: head.headers.map { H2Header($0.name, $0.value) }, maxMessageBytes: 4 * 1024 * 1024,
                                    onMessage: { answer = $0 },
                                    onEnd: { [weak self] outcome in
                                        guard let self else { return }
                                        self.loop.cancel(deadline)
                                        self.finished(id, csr: csr, answer: answer, outcome: outcome)
                                    })
        call.send(bytes)
        call.finishSending()
        deadline = loop.schedule(after: CertificateFetcher.callTimeout.nanoseconds) { [weak call] in
            call?.cancel("no answer within \(CertificateFetcher.callTimeout)")
        }
    }

    private func finished(_ id: SPIFFEID, csr: CertificateRequest, answer: [UInt8]?, outcome: GRPCCall.Outcome) {
        guard case let .status(status) = outcome, status.code == .ok else {
            let label: String = switch outcome {
            case .connectionFailed: "unavailable"
            case let .status(s) where s.code == .unauthenticated || s.code == .permissionDenied: "refused"
            case let .status(s) where s.code == .unavailable || s.code == .cancelled || s.code == .deadlineExceeded: "unavailable"
            case .status: "error"
            }
            failed(id, outcome: label, reason: "CreateCertificate: \(outcome)")
            return
        }
        guard let answer else {
            failed(id, outcome: "rejected_answer", reason: "CreateCertificate returned OK without a response")
            return
        }
        let response: Istio_V1_Auth_IstioCertificateResponse
        do { response = try Istio_V1_Auth_IstioCertificateResponse(serializedBytes: answer) } catch {
            failed(id, outcome: "rejected_answer", reason: "the CA's answer does not decode: \(error)")
            return
        }
        do throws(TLSError) {
            let trust: TrustBundle
            if let configuredTrust { trust = configuredTrust } else { trust = try returnedTrust(response.certChain) }
            let svid = try csr.accept(response.certChain, trust: trust, now: Date())
            if configuredTrust == nil { roots = trust.roots }
            keys[id] = svid
            schedule.succeeded(id, notBefore: svid.notBefore, notAfter: svid.notAfter)
            report { $0.caRequests["success", default: 0] += 1 }
            log.info("certificate issued by the Istio CA", ["identity": id.description, "serial": svid.leaf.serialHex,
                                                            "expires": "\(svid.notAfter)"])
            publish()
            run()
        } catch {
            failed(id, outcome: "rejected_answer", reason: error.reason)
        }
    }

    /// The roots at the end of the CA's chain: self-signed CA certificates (Istio puts the root last).
    private func returnedTrust(_ chain: [String]) throws(TLSError) -> TrustBundle {
        var roots: [Certificate] = []
        for pem in chain {
            guard let certs = try? Certificate.parsePEMChain(Array(pem.utf8)) else { continue }
            roots += certs.filter { $0.isSelfSigned && $0.isCA }
        }
        guard !roots.isEmpty else { throw TLSError(code: "ca_answer", reason: "the CA's chain ends at no root certificate") }
        return try TrustBundle(roots: roots)
    }

    private func failed(_ id: SPIFFEID, outcome: String, reason: String) {
        schedule.failed(id, reason: reason, now: Date(), jitter: Double.random(in: 0.8...1.2, using: &rng))
        report { $0.caRequests[outcome, default: 0] += 1 }
        log.warn("certificate request failed", ["identity": id.description, "outcome": outcome, "error": reason])
        // A certificate past its end is never served, whatever the retries do.
        if let key = keys[id], key.notAfter <= Date() { keys[id] = nil }
        publish()
        run()
    }

    private func publish() {
        var problems: [SPIFFEID: String] = [:]
        for (id, state) in schedule.states where keys[id] == nil {
            switch state {
            case .pending, .inFlight: problems[id] = "certificate requested from the Istio CA, not yet issued"
            case let .retrying(_, _, lastError, _): problems[id] = lastError
            case .valid: problems[id] = "certificate expired"
            }
        }
        onChange(Issued(keys: keys, roots: roots, problems: problems))
        reportStates()
    }

    private func reportStates() {
        var out: [String: ControlPlaneStatus.CertificateState] = [:]
        for (id, state) in schedule.states {
            let validUntil = keys[id]?.notAfter
            switch state {
            case let .pending(due): out[id.description] = .init(state: "pending", validUntil: validUntil, renewAt: due)
            case .inFlight: out[id.description] = .init(state: "in-flight", validUntil: validUntil)
            case let .valid(notAfter, renewAt): out[id.description] = .init(state: "valid", validUntil: notAfter, renewAt: renewAt)
            case let .retrying(due, failures, lastError, _):
                out[id.description] = .init(state: "retrying", validUntil: validUntil, renewAt: due, lastError: lastError, failures: failures)
            }
        }
        report { $0.certificates = out }
    }
}
