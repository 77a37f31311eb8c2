import COpenSSL
import CHBONEOpenSSLShim
import Foundation
import HBONEIdentity

/// What a node proxy sends the Istio CA for one workload: a fresh P-256 key (kept here) and a PEM
/// CSR with an empty subject and one critical URI SAN, the SPIFFE ID, as ztunnel builds it.
public struct CertificateRequest: Sendable {
    public let identity: SPIFFEID
    public let key: PrivateKey
    public let pem: String

    public init(for identity: SPIFFEID) throws(TLSError) {
        OpenSSLErrors.clear()
        let key = try CertificateAuthority.generateKey(.ecP256)
        guard let req = X509_REQ_new() else { throw TLSError.fromQueue(code: "csr", "X509_REQ_new") }
        defer { X509_REQ_free(req) }
        func check(_ ok: Bool, _ what: String) throws(TLSError) { if !ok { throw TLSError.fromQueue(code: "csr", what) } }
        try check(X509_REQ_set_version(req, 0) == 1, "version")
        try check(X509_REQ_set_pubkey(req, key.pkey) == 1, "public key")
        var ctx = X509V3_CTX()
        X509V3_set_ctx(&ctx, nil, nil, req, nil, 0)
        guard let san = X509V3_EXT_conf(nil, &ctx, "subjectAltName", "critical,URI:\(identity)") else {
            throw TLSError.fromQueue(code: "csr", "subjectAltName")
        }
        defer { X509_EXTENSION_free(san) }
        try check(chbone_req_add_extension(req, san) == 1, "extension request")
        try check(X509_REQ_sign(req, key.pkey, EVP_sha256()) > 0, "sign")
        guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.fromQueue(code: "csr", "BIO_new") }
        defer { BIO_free(bio) }
        try check(PEM_write_bio_X509_REQ(bio, req) == 1, "PEM")
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = chbone_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { throw TLSError(code: "csr", reason: "empty PEM") }
        self.identity = identity
        self.key = key
        self.pem = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
        OpenSSLErrors.clear()
    }

    /// The CA's answer (`cert_chain`: PEM, leaf first, root last), accepted only if the leaf carries
    /// exactly the requested identity, belongs to this request's key and chains to `trust` now.
    public func accept(_ certChain: [String], trust: TrustBundle, now: Date = Date()) throws(TLSError) -> CertifiedKey {
        guard !certChain.isEmpty else { throw TLSError(code: "ca_answer", reason: "the CA returned an empty chain") }
        var chain: [Certificate] = []
        for (i, pem) in certChain.enumerated() {
            do { chain += try Certificate.parsePEMChain(Array(pem.utf8)) } catch {
                throw TLSError(code: "ca_answer", reason: "cert_chain[\(i)] is not a PEM certificate: \(error.reason)")
            }
        }
        let svid: CertifiedKey
        do { svid = try CertifiedKey(chain: chain, key: key) } catch {
            throw TLSError(code: "ca_answer", reason: error.reason)
        }
        guard svid.identity == identity else {
            throw TLSError(code: "ca_answer", reason: "the CA issued \(svid.identity), not \(identity)")
        }
        if let problem = trust.verify(chain: svid.chain, at: now) {
            throw TLSError(code: "ca_answer", reason: "the issued chain does not verify against the trust bundle: \(problem)")
        }
        return svid
    }
}
