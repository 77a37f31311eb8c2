import COpenSSL
import CHBONEOpenSSLShim
import HBONEIdentity

/// One TLS connection driven entirely from memory: ciphertext in with `feed`, plaintext out with
/// `read`, plaintext in with `write`, ciphertext out with `takeCiphertext`. No sockets, no clock.
/// Confined to one thread.
public final class TLSEngine {
    let ssl: OpaquePointer
    private var readBIO: OpaquePointer     // owned by `ssl` (SSL_set_bio)
    private let writeBIO: OpaquePointer    // owned by `ssl`: a sink for outgoing ciphertext (sink_bio.c)
    /// Keeps the `SSL_CTX` alive: a `TLSContext` (mesh) or a `ControlPlaneTLSContext`.
    private let contextOwner: AnyObject
    let role: TLSContext.Role
    let trust: TrustBundle
    public let verification: PeerVerification
    public internal(set) var peerIdentity: SPIFFEID?
    public internal(set) var rejection: PeerRejection?
    /// SHA-256 of the root the peer's chain was verified up to (see `TrustBundle.contains(anchor:)`).
    public internal(set) var trustAnchor: [UInt8]?
    /// When the peer's verified chain stops being valid (the earliest notAfter in it, Unix seconds).
    public internal(set) var peerNotAfter: Int?
    /// What the SVID rules read from the peer's leaf (kept with a verified chain in the cache).
    var leafFacts: LeafFacts?
    /// With revocation lists configured: the chain the peer presented, kept past the handshake so a
    /// new list can be checked against the open connection (`TrustBundle.revocation(of:)`).
    public private(set) var retainedPeerChain: [Certificate] = []
    /// The revocation lists the peer was verified against (`TrustBundle.revocationFingerprint`).
    public var revocationFingerprint: [UInt8] { trust.revocationFingerprint }
    public private(set) var isHandshakeComplete = false
    public private(set) var failed = false
    /// The loop's cache of verified chains (nil: verify every chain in full).
    let chainCache: VerifiedChainCache?

    static let exDataIndex: Int32 = chbone_ssl_get_ex_new_index()

    public convenience init(context: TLSContext, verification: PeerVerification, chainCache: VerifiedChainCache? = nil) throws(TLSError) {
        try self.init(ctx: context.ctx, owner: context, role: context.role, trust: context.trust, verification: verification,
                      chainCache: chainCache)
    }

    /// A control-plane connection: the client checks istiod's certificate against the roots and
    /// `serverName` (or `alternativeName`, `ALT_XDS_HOSTNAME`) and sends `serverName` as SNI; an
    /// IP address is checked as one and sent as no SNI.
    public convenience init(controlPlane context: ControlPlaneTLSContext, serverName: String, alternativeName: String? = nil) throws(TLSError) {
        try self.init(ctx: context.ctx, owner: context, role: context.role, trust: context.trust,
                      verification: .init(.controlPlane(serverName: serverName)), chainCache: nil)
        guard context.role == .client else { return }
        OpenSSLErrors.clear()
        let param = SSL_get0_param(ssl)
        if serverName.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":") || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) }),
           X509_VERIFY_PARAM_set1_ip_asc(param, serverName) == 1 {
            // An IP literal: matched against the certificate's IP SANs; SNI carries no IP.
        } else {
            X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            guard X509_VERIFY_PARAM_set1_host(param, serverName, 0) == 1, chbone_ssl_set_sni(ssl, serverName) == 1 else {
                throw TLSError.fromQueue(code: "engine", "server name \(serverName.prefix(80))")
            }
            if let alternativeName, X509_VERIFY_PARAM_add1_host(param, alternativeName, 0) != 1 {
                throw TLSError.fromQueue(code: "engine", "alternative server name \(alternativeName.prefix(80))")
            }
        }
        OpenSSLErrors.clear()
    }

    private init(ctx: OpaquePointer, owner: AnyObject, role: TLSContext.Role, trust: TrustBundle, verification: PeerVerification,
                 chainCache: VerifiedChainCache?) throws(TLSError) {
        OpenSSLErrors.clear()
        guard let ssl = SSL_new(ctx) else { throw TLSError.fromQueue(code: "engine", "SSL_new") }
        guard let r = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.fromQueue(code: "engine", "BIO_new")
        }
        guard let w = chbone_sink_bio_new() else {
            BIO_free(r)
            SSL_free(ssl)
            throw TLSError.fromQueue(code: "engine", "ciphertext sink BIO")
        }
        // An empty read BIO means "wait for more", not EOF.
        chbone_bio_set_mem_eof_return(r, -1)
        SSL_set_bio(ssl, r, w)
        self.ssl = ssl
        self.readBIO = r
        self.writeBIO = w
        self.contextOwner = owner
        self.role = role
        self.trust = trust
        self.verification = verification
        self.chainCache = chainCache
        switch role {
        case .server: SSL_set_accept_state(ssl)
        case .client: SSL_set_connect_state(ssl)
        }
        // Unretained: this engine owns `ssl` and frees it in deinit, so the pointer never dangles.
        SSL_set_ex_data(ssl, TLSEngine.exDataIndex, Unmanaged.passUnretained(self).toOpaque())
        // The chain cache's key: the digest of the peer's Certificate message as it arrived.
        if chainCache != nil { chbone_ssl_capture_peer_certificates(ssl, 1) }
        // Every certificate of the chain, not only the leaf: an intermediate may be revoked too.
        if trust.checksRevocation { X509_VERIFY_PARAM_set_flags(SSL_get0_param(ssl), UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL)) }
    }

    deinit { SSL_free(ssl) }

    public enum HandshakeStatus: Equatable {
        case complete
        case inProgress
        case failed(TLSError)
    }

    public enum ReadStatus: Equatable {
        case bytes(Int)
        case needMore
        case closed            // close_notify received
        case failed(TLSError)
    }

    /// Ciphertext from the peer.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard ciphertext.count > 0 else { return }
        _ = BIO_write(readBIO, ciphertext.baseAddress, Int32(ciphertext.count))
    }

    /// Advances the handshake with whatever was fed.
    public func handshake() -> HandshakeStatus {
        if isHandshakeComplete { return .complete }
        if failed { return .failed(TLSError(code: rejection?.code ?? "handshake", reason: rejection?.description ?? "handshake failed")) }
        OpenSSLErrors.clear()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            if !alpnIsH2 {
                return fail(.noALPN)
            }
            if peerIdentity == nil && !verification.isControlPlane {
                // verify callback did not run at depth 0 (cannot happen with VERIFY_PEER): refuse.
                return fail(.noCertificate)
            }
            isHandshakeComplete = true
            if chainCache != nil { chbone_ssl_capture_peer_certificates(ssl, 0) }
            if trust.revocationLists != nil { retainedPeerChain = peerChain }
            return .complete
        }
        let error = SSL_get_error(ssl, rc)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return .inProgress }
        failed = true
        return .failed(classify(prefix: "handshake"))
    }

    private func fail(_ reason: PeerRejection) -> HandshakeStatus {
        failed = true
        rejection = reason
        return .failed(TLSError(code: reason.code, reason: reason.description))
    }

    /// Decrypts into `buffer`. Call until `.needMore`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadStatus {
        // The last call of each such loop finds nothing: no fed bytes left and nothing buffered
        // inside SSL. That SSL_read would only say WANT_READ, through its record layer and
        // SSL_get_error (about 900 instructions); answered here instead. A failed or shut-down
        // SSL still goes through SSL_read, which repeats its answer.
        if !failed, BIO_ctrl_pending(readBIO) == 0, SSL_has_pending(ssl) == 0,
           SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN == 0 {
            return .needMore
        }
        OpenSSLErrors.clear()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        let error = SSL_get_error(ssl, n)
        switch error {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .needMore
        case SSL_ERROR_ZERO_RETURN: return .closed
        default:
            failed = true
            return .failed(classify(prefix: "read"))
        }
    }

    /// Encrypts all of `plaintext` into the outgoing ciphertext.
    public func write(_ plaintext: UnsafeRawBufferPointer) -> TLSError? {
        var offset = 0
        while offset < plaintext.count {
            OpenSSLErrors.clear()
            let chunk = min(plaintext.count - offset, Int(Int32.max))
            let n = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(chunk))
            if n <= 0 {
                failed = true
                return classify(prefix: "write")
            }
            offset += Int(n)
        }
        return nil
    }

    /// Bytes waiting to go to the peer.
    public var pendingCiphertext: Int {
        var data: UnsafePointer<UInt8>? = nil
        return chbone_sink_bio_data(writeBIO, &data)
    }

    /// Hands the outgoing ciphertext to `body` (borrowed for the call), then empties the buffer.
    public func takeCiphertext(_ body: (UnsafeRawBufferPointer) -> Void) {
        var data: UnsafePointer<UInt8>? = nil
        let n = chbone_sink_bio_data(writeBIO, &data)
        guard n > 0, let data else { return }
        body(UnsafeRawBufferPointer(start: data, count: n))
        chbone_sink_bio_clear(writeBIO)
    }

    /// After the handshake, frees what only the handshake needed: the peer's certificate chains
    /// (the verify callback already took the identity) and memory BIOs grown to the handshake's
    /// flights. A connection idling in a pool is mostly this state. `peerChain` is empty afterwards.
    public func releaseHandshakeMemory() {
        guard isHandshakeComplete else { return }
        chbone_ssl_free_peer_chains(ssl)
        trimBuffers(above: 0)
    }

    /// Gives back buffer capacity a burst left when the buffers together hold more than `bytes`:
    /// the read BIO is replaced by a fresh one carrying unread ciphertext over, the outgoing sink
    /// keeps only what is unsent. Nothing shrinks them otherwise, so call this at quiet moments
    /// (the proxy does on its keepalive tick).
    public func trimBuffers(above bytes: Int) {
        guard bufferCapacity > bytes else { return }
        chbone_sink_bio_trim(writeBIO)
        guard chbone_bio_mem_capacity(readBIO) > 0, let r = BIO_new(BIO_s_mem()) else { return }
        chbone_bio_set_mem_eof_return(r, -1)
        var data: UnsafeMutablePointer<CChar>? = nil
        let unread = chbone_bio_get_mem_data(readBIO, &data)
        if unread > 0, let data { _ = BIO_write(r, data, Int32(unread)) }
        // The read BIO differs from the current one and the write BIO is the same: ssl takes one
        // reference to `r`, frees the old read BIO, and keeps its own reference to the sink.
        SSL_set0_rbio(ssl, r)
        readBIO = r
    }

    /// For a sweep about once a second: the outgoing buffer, when empty, is given back (a busy
    /// connection takes a new one at its next write).
    public func releaseIdleBuffers() {
        if pendingCiphertext == 0 { chbone_sink_bio_trim(writeBIO) }
    }

    /// Bytes the engine's buffers hold allocated (for tests and memory accounting).
    public var bufferCapacity: Int { chbone_bio_mem_capacity(readBIO) + chbone_sink_bio_capacity(writeBIO) }

    /// Queues close_notify.
    public func shutdown() {
        OpenSSLErrors.clear()
        if isHandshakeComplete { _ = SSL_shutdown(ssl) }
        OpenSSLErrors.clear()
    }

    public var alpn: String? {
        var data: UnsafePointer<UInt8>? = nil
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    var alpnIsH2: Bool { alpn == "h2" }

    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
    public var cipher: String {
        guard let c = SSL_get_current_cipher(ssl) else { return "" }
        return String(cString: SSL_CIPHER_get_name(c))
    }

    /// The certificates the peer sent, leaf first.
    public var peerChain: [Certificate] {
        guard let stack = SSL_get_peer_cert_chain(ssl) else { return [] }
        var out: [Certificate] = []
        for i in 0..<chbone_sk_x509_num(stack) {
            if let x = chbone_sk_x509_value(stack, i) { out.append(Certificate(borrowing: x)) }
        }
        // A server's stack omits the client's leaf in OpenSSL: add it.
        if role == .server, let leaf = SSL_get0_peer_certificate(ssl) {
            if out.first.map({ X509_cmp($0.x509, leaf) != 0 }) ?? true { out.insert(Certificate(borrowing: leaf), at: 0) }
        }
        return out
    }

    /// Names a failed handshake, read or write by OpenSSL's library and reason codes (the text is
    /// kept for people): our own verification's rejection first, then the cases operators act on.
    private func classify(prefix: String) -> TLSError {
        let entries = OpenSSLErrors.drainEntries()
        if let rejection { return TLSError(code: rejection.code, reason: rejection.description) }
        let text = entries.map(\.text).joined(separator: "; ")
        if entries.contains(where: { $0.isSSL(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) }) {
            rejection = .noCertificate
            return TLSError(code: "no_certificate", reason: "peer sent no certificate")
        }
        if entries.contains(where: { $0.isSSL(SSL_R_NO_APPLICATION_PROTOCOL) || $0.isSSL(SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) }) {
            rejection = .noALPN
            return TLSError(code: "no_alpn_h2", reason: text)
        }
        if entries.contains(where: \.isPeerAlert) { return TLSError(code: "peer_alert", reason: "\(prefix): peer sent \(text)") }
        if entries.contains(where: { TLSEngine.versionReasons.contains($0.reason) && $0.library == ERR_LIB_SSL }) {
            return TLSError(code: "protocol_version", reason: "\(prefix): \(text)")
        }
        return TLSError(code: prefix == "handshake" ? "handshake" : "tls_\(prefix)", reason: text.isEmpty ? "\(prefix) failed" : "\(prefix): \(text)")
    }

    /// SSL reasons that mean the two sides share no protocol version (or the peer does not speak TLS).
    static let versionReasons: Set<Int32> = [SSL_R_WRONG_VERSION_NUMBER, SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_NO_PROTOCOLS_AVAILABLE,
                                             SSL_R_VERSION_TOO_LOW, SSL_R_VERSION_TOO_HIGH, SSL_R_UNSUPPORTED_SSL_VERSION,
                                             SSL_R_BAD_PROTOCOL_VERSION_NUMBER, SSL_R_UNKNOWN_PROTOCOL]

    // MARK: Verification (called by tlsVerifyCallback during the handshake)

    func verify(preverify: Int32, storeContext: OpaquePointer) -> Int32 {
        let depth = X509_STORE_CTX_get_error_depth(storeContext)
        if preverify != 1 {
            let code = X509_STORE_CTX_get_error(storeContext)
            // No list from this certificate's issuer, or a stale one: not revoked (as ztunnel).
            if TrustBundle.unknownRevocationStatus.contains(code) {
                X509_STORE_CTX_set_error(storeContext, X509_V_OK)
                return 1
            }
            // A purpose failure at the leaf is better told by our own SVID rules when they also fail.
            if depth == 0, code == X509_V_ERR_INVALID_PURPOSE, let x = X509_STORE_CTX_get_current_cert(storeContext),
               case let .failure(reason) = verification.check(leaf: Certificate(borrowing: x)) {
                if rejection == nil { rejection = reason }
                return 0
            }
            if rejection == nil {
                rejection = .chain(code: TLSEngine.chainCode(code), detail: "depth \(depth): " + String(cString: X509_verify_cert_error_string(Int(code))))
            }
            return 0
        }
        guard depth == 0 else { return 1 }
        // The control plane is no SVID: OpenSSL checked the chain and the name; that is all.
        if verification.isControlPlane { return 1 }
        guard let x = X509_STORE_CTX_get_current_cert(storeContext) else {
            rejection = .noCertificate
            return 0
        }
        return applySVIDRules(leaf: x, storeContext)
    }

    /// The SVID rules on a leaf whose chain is trusted: records the identity, or the reason and an
    /// application verification error. Returns OpenSSL's verdict (1 or 0).
    func applySVIDRules(leaf: OpaquePointer, _ storeContext: OpaquePointer) -> Int32 {
        let facts = LeafFacts(Certificate(borrowing: leaf))
        leafFacts = facts
        return applySVIDRules(facts, storeContext)
    }

    /// The same on facts already read (a verified-chain cache hit).
    func applySVIDRules(_ facts: LeafFacts, _ storeContext: OpaquePointer) -> Int32 {
        switch verification.check(facts) {
        case let .success(id):
            peerIdentity = id
            return 1
        case let .failure(reason):
            rejection = reason
            X509_STORE_CTX_set_error(storeContext, X509_V_ERR_APPLICATION_VERIFICATION)
            return 0
        }
    }

    static func chainCode(_ code: Int32) -> String {
        switch code {
        case X509_V_ERR_CERT_HAS_EXPIRED: return "expired"
        case X509_V_ERR_CERT_NOT_YET_VALID: return "not_yet_valid"
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "unknown_issuer"
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "untrusted_root"
        case X509_V_ERR_PATH_LENGTH_EXCEEDED: return "path_length_exceeded"
        case X509_V_ERR_INVALID_CA: return "invalid_ca"
        case X509_V_ERR_INVALID_PURPOSE: return "invalid_purpose"
        case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "chain_too_long"
        case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "bad_signature"
        case X509_V_ERR_PERMITTED_VIOLATION, X509_V_ERR_EXCLUDED_VIOLATION: return "name_constraints"
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: return "hostname_mismatch"
        case X509_V_ERR_CERT_REVOKED: return "revoked"
        case X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE, X509_V_ERR_KEYUSAGE_NO_CRL_SIGN,
             X509_V_ERR_DIFFERENT_CRL_SCOPE, X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION, X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
            return "crl_invalid"
        default: return "chain_invalid"
        }
    }
}
