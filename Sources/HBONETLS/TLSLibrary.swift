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

    /// With `builtinECKeys`: a certificate's P-256 key takes its group from one prepared copy
    /// instead of building the curve anew (about 8 µs per certificate; builtin_ec.c).
    public static var sharedGroupDecoder: Bool { builtinECKeys && chbone_ec_shared_group_decoder() == 1 }

    /// With `builtinECKeys`: X25519 key shares take OpenSSL's built-in X25519 method too (no
    /// provider fetches per key exchange; builtin_ec.c).
    public static var builtinX25519: Bool { builtinECKeys && chbone_builtin_x25519() == 1 }

    /// OpenSSL allocates through a per-thread cache of freed blocks (the shim's thread_cache.c):
    /// about 1,800 allocations per server handshake and a record buffer per record otherwise reach
    /// the shared heap. `HBONE_OPENSSL_MALLOC=system` keeps the system allocator (for comparison);
    /// sanitizer builds always do.
    public static var threadCache: Bool { chbone_alloc_thread_cache_installed() == 1 }

    /// Bytes the calling thread's OpenSSL cache holds.
    public static var threadCacheBytes: Int { chbone_alloc_thread_cache_bytes() }

    /// Failures of the cache's size-class self-check (0 when sound; for tests).
    static func threadCacheSelfCheck() -> Int { Int(chbone_alloc_self_check()) }

    /// For each event loop about once a second: a cache that served nothing since the last call
    /// (an idle loop) is given back to the heap.
    public static func tickThreadCache() { chbone_alloc_tick() }

    /// "OpenSSL 3.0.22 25 Aug 2026"
    public static var version: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }

    /// Makes the process-wide choices; every entry point that parses or creates keys calls it.
    @inline(__always) static func prepare() { _ = builtinECKeys }
}
