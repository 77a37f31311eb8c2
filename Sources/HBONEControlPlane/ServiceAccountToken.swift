import Foundation

/// The projected service-account token istiod authenticates node proxies with (`AUTH_TOKEN`),
/// read anew for every call because the kubelet rotates it in place.
public enum ServiceAccountToken {
    /// The token, or why there is none. Bounded: a token is a JWT of a few KiB, not a big file.
    public static func read(_ path: String) -> Result<String, TokenError> {
        guard let handle = FileHandle(forReadingAtPath: path) else { return .failure(TokenError("cannot read the token file \(path)")) }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: 64 * 1024)) ?? Data()
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { return .failure(TokenError("the token file \(path) is empty")) }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            return .failure(TokenError("the token file \(path) holds characters a header cannot carry"))
        }
        return .success(token)
    }

    public struct TokenError: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
