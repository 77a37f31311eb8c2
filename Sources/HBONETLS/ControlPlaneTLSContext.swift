import COpenSSL
import CHBONEOpenSSLShim

/// TLS to the control plane (istiod's xDS and CA on 15012): server authentication only. The client
/// presents no certificate (the bearer token authenticates it); istiod's certificate must chain to
/// the configured roots and carry the name dialled (`TLSEngine.init(controlPlane:serverName:)`).
/// The server role exists for in-memory tests of that client.
public final class ControlPlaneTLSContext: @unchecked Sendable {
    // Immutable after init; safe to share across threads once configured.
    let ctx: OpaquePointer
    public let role: TLSContext.Role
    public let trust: TrustBundle

    /// A client trusting `trust`.
    public convenience init(trust: TrustBundle) throws(TLSError) {
        try self.init(role: .client, trust: trust, serving: nil)
    }

    /// A server presenting `certificate` (any names) to control-plane clients, asking none of them.
    /// `selectH2: false` negotiates no ALPN (tests of a client meeting a server without h2).
    public convenience init(serving certificate: CertifiedKey, trust: TrustBundle, selectH2: Bool = true) throws(TLSError) {
        try self.init(role: .server, trust: trust, serving: certificate, selectH2: selectH2)
    }

    private init(role: TLSContext.Role, trust: TrustBundle, serving: CertifiedKey?, selectH2: Bool = true) throws(TLSError) {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        guard let ctx = SSL_CTX_new(TLS_method()) else { throw TLSError.fromQueue(code: "context", "SSL_CTX_new") }
        self.ctx = ctx
        self.role = role
        self.trust = trust
        func check(_ ok: Bool, _ what: String) throws(TLSError) {
            if !ok { throw TLSError.fromQueue(code: "context", what) }
        }
        // istiod speaks TLS 1.2 and 1.3; nothing older.
        try check(chbone_ssl_ctx_set_min_tls12(ctx) == 1, "TLS 1.2 minimum")
        _ = SSL_CTX_set_options(ctx, chbone_ssl_op_no_renegotiation())
        _ = chbone_ssl_ctx_set_mode(ctx, chbone_ssl_mode_release_buffers())
        if let serving {
            try TLSContext.present(serving, in: ctx)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            if selectH2 { chbone_ssl_ctx_select_alpn_h2(ctx) }
        } else {
            SSL_CTX_set1_cert_store(ctx, trust.store)   // set1: a reference of its own
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tlsVerifyCallback)
            SSL_CTX_set_verify_depth(ctx, TLSContext.verifyDepth)
            try check(chbone_ssl_ctx_set_alpn_h2(ctx) == 0, "ALPN")   // 0 is success for this call
        }
        OpenSSLErrors.clear()
    }

    deinit { SSL_CTX_free(ctx) }
}
