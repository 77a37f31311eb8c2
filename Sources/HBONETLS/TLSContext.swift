import COpenSSL
import CHBONEOpenSSLShim
import HBONEIdentity

/// One `SSL_CTX` for one (identity, role), built once and shared by every connection of that
/// identity until its certificate or the trust bundle changes. Building one per connection cost
/// −60 % handshake throughput here (swift-openssl-nghttp2-notes).
public final class TLSContext: @unchecked Sendable {
    public enum Role: Sendable { case server, client }

    // Immutable after init; SSL_CTX is safe to share across threads once configured.
    let ctx: OpaquePointer
    public let role: Role
    public let certifiedKey: CertifiedKey
    public let trust: TrustBundle

    /// TLS 1.3 AES-GCM only, as the reference negotiates.
    public static let cipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
    public static let groups = "X25519:P-256"
    /// Root + one or two intermediates + leaf, with room for one more level.
    public static let verifyDepth: Int32 = 5

    public init(role: Role, certifiedKey: CertifiedKey, trust: TrustBundle) throws(TLSError) {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        guard let ctx = SSL_CTX_new(TLS_method()) else { throw TLSError.fromQueue(code: "context", "SSL_CTX_new") }
        self.ctx = ctx
        self.role = role
        self.certifiedKey = certifiedKey
        self.trust = trust
        func check(_ ok: Bool, _ what: String) throws(TLSError) {
            if !ok { throw TLSError.fromQueue(code: "context", what) }
        }
        try check(chbone_ssl_ctx_set_tls13_only(ctx) == 1, "TLS 1.3 only")
        try check(SSL_CTX_set_ciphersuites(ctx, TLSContext.cipherSuites) == 1, "cipher suites")
        try check(chbone_ssl_ctx_set1_groups_list(ctx, TLSContext.groups) == 1, "groups")
        _ = SSL_CTX_set_options(ctx, chbone_ssl_op_no_ticket() | chbone_ssl_op_no_renegotiation())
        _ = chbone_ssl_ctx_disable_session_cache(ctx)
        // No resumption: no tickets are issued or used (+10–25 % handshakes/s when not resuming).
        _ = SSL_CTX_set_num_tickets(ctx, 0)
        // An idle SSL keeps 29 KB instead of 45 KB.
        _ = chbone_ssl_ctx_set_mode(ctx, chbone_ssl_mode_release_buffers())

        try TLSContext.present(certifiedKey, in: ctx)

        // set1 adds a reference; set (without 1) would take ours and double-free the shared store.
        SSL_CTX_set1_cert_store(ctx, trust.store)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tlsVerifyCallback)
        SSL_CTX_set_verify_depth(ctx, TLSContext.verifyDepth)
        SSL_CTX_set_cert_verify_callback(ctx, tlsCertVerifyCallback, nil)

        switch role {
        case .server:
            chbone_ssl_ctx_select_alpn_h2(ctx)
        case .client:
            try check(chbone_ssl_ctx_set_alpn_h2(ctx) == 0, "ALPN")   // 0 is success for this call
        }
        OpenSSLErrors.clear()
    }

    deinit { SSL_CTX_free(ctx) }

    public var identity: SPIFFEID { certifiedKey.identity }

    /// Makes `ctx` present `key`: the leaf, its private key and the intermediates after it.
    static func present(_ key: CertifiedKey, in ctx: OpaquePointer) throws(TLSError) {
        func check(_ ok: Bool, _ what: String) throws(TLSError) {
            if !ok { throw TLSError.fromQueue(code: "context", what) }
        }
        try check(SSL_CTX_use_certificate(ctx, key.leaf.x509) == 1, "leaf certificate")
        try check(SSL_CTX_use_PrivateKey(ctx, key.key.pkey) == 1, "private key")
        for intermediate in key.chain.dropFirst() {
            // add_extra_chain_cert takes ownership of one reference: give it its own.
            X509_up_ref(intermediate.x509)
            if chbone_ssl_ctx_add_extra_chain_cert(ctx, intermediate.x509) != 1 {
                X509_free(intermediate.x509)
                throw TLSError.fromQueue(code: "context", "intermediate certificate")
            }
        }
        try check(SSL_CTX_check_private_key(ctx) == 1, "key does not match certificate")
    }
}

/// The chain check for every certificate, then the SVID rules at depth 0. Context comes from the
/// SSL's ex_data: an unretained pointer to the TLSEngine, which owns the SSL and so outlives this call.
let tlsVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { preverify, storeContext in
    guard let storeContext,
          let rawSSL = X509_STORE_CTX_get_ex_data(storeContext, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let rawEngine = SSL_get_ex_data(OpaquePointer(rawSSL), TLSEngine.exDataIndex)
    else { return 0 }
    let engine = Unmanaged<TLSEngine>.fromOpaque(rawEngine).takeUnretainedValue()
    return engine.verify(preverify: preverify, storeContext: storeContext)
}
