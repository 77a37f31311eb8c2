import COpenSSL
import CHBONEOpenSSLShim
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide OpenSSL choices, made once before the first certificate or key is parsed.
public enum TLSLibrary {
    /// On OpenSSL 3.0/3.1, EC keys take OpenSSL's built-in EC method instead of the provider
    /// decoder, which costs about 100 µs per certificate (measured: the server side of an
    /// in-memory mTLS handshake went from 990 to 630 µs). Same library, same EC code; the
    /// environment variable `HBONE_OPENSSL_PROVIDER_EC=1` keeps the provider path.
    public static let builtinECKeys: Bool = {
        if let v = getenv("HBONE_OPENSSL_PROVIDER_EC"), String(cString: v) == "1" { return false }
        return chbone_use_builtin_ec_key_method() == 1
    }()

    /// "OpenSSL 3.0.22 25 Aug 2026"
    public static var version: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }

    /// Makes the process-wide choices; every entry point that parses or creates keys calls it.
    @inline(__always) static func prepare() { _ = builtinECKeys }
}
