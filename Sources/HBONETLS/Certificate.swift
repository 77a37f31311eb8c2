import COpenSSL
import CHBONEOpenSSLShim
import Foundation

/// One X.509 certificate. Owns one reference to the C object and frees it in `deinit`.
public final class Certificate: @unchecked Sendable {
    // Immutable after init; OpenSSL allows concurrent reads of an X509.
    let x509: OpaquePointer

    /// Takes ownership of one reference to `x509`.
    init(takingOwnership x509: OpaquePointer) {
        self.x509 = x509
    }

    /// Adds a reference to a borrowed `x509`.
    init(borrowing x509: OpaquePointer) {
        X509_up_ref(x509)
        self.x509 = x509
    }

    deinit { X509_free(x509) }

    /// Every certificate in PEM text, in order. Fails on an empty or damaged input.
    public static func parsePEMChain(_ pem: [UInt8]) throws(TLSError) -> [Certificate] {
        let certs = try PEMReader.readAll(pem, code: "pem") { bio in PEM_read_bio_X509(bio, nil, nil, nil).map(Certificate.init(takingOwnership:)) }
        if certs.isEmpty { throw TLSError(code: "pem", reason: "no PEM certificate found") }
        return certs
    }

    public static func parseDER(_ der: [UInt8]) throws(TLSError) -> Certificate {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        let x: OpaquePointer? = der.withUnsafeBytes { raw in
            var p = raw.bindMemory(to: UInt8.self).baseAddress
            return d2i_X509(nil, &p, raw.count)
        }
        guard let x else { throw TLSError.fromQueue(code: "der", "not a DER certificate") }
        return Certificate(takingOwnership: x)
    }

    public var der: [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let n = i2d_X509(x509, &out)
        guard n > 0, let out else { return [] }
        defer { chbone_openssl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }

    public var pem: String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        PEM_write_bio_X509(bio, x509)
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = chbone_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }

    public var subject: String { Certificate.name(X509_get_subject_name(x509)) }
    public var issuer: String { Certificate.name(X509_get_issuer_name(x509)) }

    /// Serial number in uppercase hex, as openssl x509 -serial prints it.
    public var serialHex: String {
        guard let serial = X509_get_serialNumber(x509), let bn = ASN1_INTEGER_to_BN(serial, nil) else { return "" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "" }
        defer { chbone_openssl_free(hex) }
        return String(cString: hex)
    }

    public var notBefore: Date { Certificate.date(X509_get0_notBefore(x509)) }
    public var notAfter: Date { Certificate.date(X509_get0_notAfter(x509)) }

    /// URI subject-alternative names, in order.
    public var uriSANs: [String] { subjectAltNames.uris }

    /// URI and DNS subject-alternative names. `count` counts every SAN of any type.
    public var subjectAltNames: (uris: [String], dns: [String], count: Int) {
        guard let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) else { return ([], [], 0) }
        // X509_get_ext_d2i returns an owned GENERAL_NAMES: freed here.
        let names = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(names) }
        var uris: [String] = [], dns: [String] = []
        let count = chbone_sk_general_name_num(names)
        for i in 0..<count {
            guard let name = chbone_sk_general_name_value(names, i) else { continue }
            switch name.pointee.type {
            case GEN_URI:
                uris.append(Certificate.string(name.pointee.d.uniformResourceIdentifier))
            case GEN_DNS:
                dns.append(Certificate.string(name.pointee.d.dNSName))
            default:
                break
            }
        }
        return (uris, dns, Int(count))
    }

    var extensionFlags: UInt32 { X509_get_extension_flags(x509) }
    public var isCA: Bool { extensionFlags & UInt32(EXFLAG_CA) != 0 }
    public var hasKeyUsage: Bool { extensionFlags & UInt32(EXFLAG_KUSAGE) != 0 }
    public var hasExtendedKeyUsage: Bool { extensionFlags & UInt32(EXFLAG_XKUSAGE) != 0 }
    public var allowsDigitalSignature: Bool { hasKeyUsage && X509_get_key_usage(x509) & UInt32(KU_DIGITAL_SIGNATURE) != 0 }
    public var allowsServerAuth: Bool { hasExtendedKeyUsage && X509_get_extended_key_usage(x509) & UInt32(XKU_SSL_SERVER) != 0 }
    public var allowsClientAuth: Bool { hasExtendedKeyUsage && X509_get_extended_key_usage(x509) & UInt32(XKU_SSL_CLIENT) != 0 }
    public var isSelfSigned: Bool { X509_check_issued(x509, x509) == X509_V_OK }

    /// Key algorithm and size, e.g. "EC P-256" or "RSA 2048".
    public var keyDescription: String {
        guard let key = X509_get0_pubkey(x509) else { return "unknown" }
        let bits = EVP_PKEY_get_bits(key)
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_EC: return bits == 256 ? "EC P-256" : bits == 384 ? "EC P-384" : "EC \(bits)"
        case EVP_PKEY_RSA: return "RSA \(bits)"
        case EVP_PKEY_ED25519: return "Ed25519"
        default: return "\(bits)-bit key"
        }
    }

    static func name(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, name, 0, chbone_xn_flag_rfc2253())
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = chbone_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }

    /// A SAN's text, every byte of it. A name that cannot be a valid one (an embedded NUL, bytes
    /// that are not UTF-8) is still returned, never skipped: it must count towards "exactly one URI
    /// SAN" and then fail parsing. Skipping it let a valid URI beside it pass as the only one.
    static func string(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> String {
        guard let s, let data = ASN1_STRING_get0_data(s) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(s))), as: UTF8.self)
    }

    static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        guard let time else { return Date(timeIntervalSince1970: 0) }
        var tmv = tm()
        guard ASN1_TIME_to_tm(time, &tmv) == 1 else { return Date(timeIntervalSince1970: 0) }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tmv)))
    }
}
