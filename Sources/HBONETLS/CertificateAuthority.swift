import COpenSSL
import CHBONEOpenSSLShim
import Foundation
import HBONEIdentity

/// Key types `hbone ca` can create.
public enum KeyType: String, Sendable, CaseIterable {
    case ecP256 = "ec-p256", ecP384 = "ec-p384", rsa2048 = "rsa-2048", rsa4096 = "rsa-4096"
}

/// Creates keys and signs certificates (root, intermediate, workload SVID) with OpenSSL.
public enum CertificateAuthority {
    public static func generateKey(_ type: KeyType) throws(TLSError) -> PrivateKey {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        let key: OpaquePointer?
        switch type {
        case .ecP256: key = chbone_ec_gen("prime256v1")   // OID names: the built-in EC method (TLSLibrary) knows no "P-256"
        case .ecP384: key = chbone_ec_gen("secp384r1")
        case .rsa2048: key = chbone_rsa_gen(2048)
        case .rsa4096: key = chbone_rsa_gen(4096)
        }
        guard let key else { throw TLSError.fromQueue(code: "keygen", "cannot generate \(type.rawValue) key") }
        return PrivateKey(takingOwnership: key)
    }

    public struct Subject: Sendable {
        public var organization: String?
        public var commonName: String?
        public init(organization: String? = nil, commonName: String? = nil) {
            self.organization = organization
            self.commonName = commonName
        }
    }

    /// Signs a certificate for `publicKeyOf` with `signer` (nil issuer: self-signed).
    /// `extensions` are OpenSSL config lines (`basicConstraints=critical,CA:TRUE`).
    public static func sign(subject: Subject, publicKeyOf subjectKey: PrivateKey, issuer: Certificate?, signer: PrivateKey,
                            validity: TimeInterval, notBeforeSkew: TimeInterval = 300, extensions: [(String, String)]) throws(TLSError) -> Certificate {
        OpenSSLErrors.clear()
        guard let x = X509_new() else { throw TLSError.fromQueue(code: "x509", "X509_new") }
        let cert = Certificate(takingOwnership: x)
        func check(_ ok: Bool, _ what: String) throws(TLSError) { if !ok { throw TLSError.fromQueue(code: "x509", what) } }
        try check(X509_set_version(x, 2) == 1, "version")
        // 128-bit random serial, positive.
        var serialBytes = [UInt8](repeating: 0, count: 16)
        try check(RAND_bytes(&serialBytes, 16) == 1, "serial")
        serialBytes[0] &= 0x7f
        guard let bn = BN_bin2bn(serialBytes, 16, nil) else { throw TLSError.fromQueue(code: "x509", "serial") }
        defer { BN_free(bn) }
        try check(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nil, "serial")
        try check(X509_gmtime_adj(X509_getm_notBefore(x), -Int(notBeforeSkew)) != nil, "notBefore")
        try check(X509_gmtime_adj(X509_getm_notAfter(x), Int(validity)) != nil, "notAfter")
        guard let name = X509_get_subject_name(x) else { throw TLSError.fromQueue(code: "x509", "subject") }
        if let o = subject.organization { X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, o, -1, -1, 0) }
        if let cn = subject.commonName { X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, -1, -1, 0) }
        try check(X509_set_issuer_name(x, issuer.map { X509_get_subject_name($0.x509) } ?? name) == 1, "issuer")
        try check(X509_set_pubkey(x, subjectKey.pkey) == 1, "public key")
        var ctx = X509V3_CTX()
        X509V3_set_ctx(&ctx, issuer?.x509 ?? x, x, nil, nil, 0)
        for (name, value) in extensions {
            guard let ext = X509V3_EXT_conf(nil, &ctx, name, value) else { throw TLSError.fromQueue(code: "x509", "extension \(name)=\(value)") }
            defer { X509_EXTENSION_free(ext) }
            try check(X509_add_ext(x, ext, -1) == 1, "add extension \(name)")
        }
        let digest = EVP_PKEY_get_bits(signer.pkey) > 256 && EVP_PKEY_get_base_id(signer.pkey) == EVP_PKEY_EC ? EVP_sha384() : EVP_sha256()
        try check(X509_sign(x, signer.pkey, digest) > 0, "sign")
        return cert
    }
}

extension CertificateAuthority {
    /// A self-signed root CA.
    public static let rootExtensions = [("basicConstraints", "critical,CA:TRUE"), ("keyUsage", "critical,keyCertSign,cRLSign"),
                                        ("subjectKeyIdentifier", "hash")]
    /// A cluster intermediate under a root: it signs SVIDs only (pathlen 0).
    public static let intermediateExtensions = [("basicConstraints", "critical,CA:TRUE,pathlen:0"), ("keyUsage", "critical,keyCertSign,cRLSign"),
                                                ("subjectKeyIdentifier", "hash"), ("authorityKeyIdentifier", "keyid:always")]

    /// An Istio-shaped SVID: P-256, empty subject, CA:false, digitalSignature, serverAuth + clientAuth,
    /// one critical URI SAN.
    public static func issueSVID(_ id: SPIFFEID, ca: Certificate, caKey: PrivateKey, lifetime: Duration) throws(TLSError) -> (certificate: Certificate, key: PrivateKey) {
        let key = try generateKey(.ecP256)
        let seconds = Double(lifetime.components.seconds)
        // Backdate for clock skew, but by at most a tenth of the lifetime so renewal points stay ahead.
        let cert = try sign(subject: .init(), publicKeyOf: key, issuer: ca, signer: caKey, validity: seconds,
                            notBeforeSkew: min(60, (seconds / 10).rounded(.down)),
                            extensions: [("basicConstraints", "critical,CA:FALSE"), ("keyUsage", "critical,digitalSignature,keyEncipherment"),
                                         ("extendedKeyUsage", "serverAuth,clientAuth"), ("subjectAltName", "critical,URI:\(id)"),
                                         ("authorityKeyIdentifier", "keyid")])
        return (cert, key)
    }
}

extension PrivateKey {
    /// PKCS#8 PEM, unencrypted (files are written 0600).
    public var pkcs8PEM: String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        PEM_write_bio_PKCS8PrivateKey(bio, pkey, nil, nil, 0, nil, nil)
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = chbone_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }

    /// Whether this key belongs to `certificate`.
    public func matches(_ certificate: Certificate) -> Bool {
        OpenSSLErrors.clear()
        defer { OpenSSLErrors.clear() }
        return X509_check_private_key(certificate.x509, pkey) == 1
    }
}

extension Certificate {
    /// Whether `issuer`'s key signed this certificate.
    public func isSigned(by issuer: Certificate) -> Bool {
        OpenSSLErrors.clear()
        defer { OpenSSLErrors.clear() }
        guard let key = X509_get0_pubkey(issuer.x509) else { return false }
        return X509_verify(x509, key) == 1
    }

    /// SHA-256 of the DER, hex.
    public var fingerprintSHA256: String {
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = der
        _ = bytes.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &digest) }
        return digest.map { String($0, radix: 16).leftPadded2 }.joined(separator: ":")
    }

    /// The path-length constraint of a CA certificate, if any.
    public var pathLength: Int? {
        let v = X509_get_pathlen(x509)
        return v < 0 ? nil : Int(v)
    }
}

extension String {
    var leftPadded2: String { count >= 2 ? self : "0" + self }
}
