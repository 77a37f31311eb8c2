#if canImport(Glibc)
import Glibc
#endif

/// strerror's text for an errno, for log lines and access-log errors.
func errnoText(_ e: Int32) -> String {
    String(cString: strerror(e))
}
