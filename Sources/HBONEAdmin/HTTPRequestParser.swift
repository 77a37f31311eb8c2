/// A minimal HTTP/1.1 request parser for the admin ports: request line and headers only (admin
/// requests carry no body we need), bounded, strict about what it accepts. Pure: bytes in, result out.
public struct HTTPRequestParser: Sendable {
    public struct Request: Sendable, Equatable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var headers: [(String, String)]

        public static func == (a: Request, b: Request) -> Bool {
            a.method == b.method && a.path == b.path && a.query == b.query && a.headers.map { $0.0 + ":" + $0.1 } == b.headers.map { $0.0 + ":" + $0.1 }
        }
    }

    public enum Outcome: Sendable, Equatable {
        case needMore
        case request(Request)
        case bad(status: Int, reason: String)
    }

    /// Requests larger than this are refused (431).
    public static let maxHeaderBytes = 8 * 1024
    private var buffer: [UInt8] = []

    public init() {}

    public mutating func feed(_ bytes: some Collection<UInt8>) -> Outcome {
        buffer.append(contentsOf: bytes)
        guard let end = headerEnd() else {
            // Bytes no request header can hold (NUL and other controls, DEL): refuse now rather than
            // wait for a blank line that garbage may never send.
            if buffer.contains(where: { ($0 < 32 && $0 != 9 && $0 != 10 && $0 != 13) || $0 == 127 }) {
                return .bad(status: 400, reason: "control character in request header")
            }
            return buffer.count > Self.maxHeaderBytes ? .bad(status: 431, reason: "request header too large") : .needMore
        }
        if end > Self.maxHeaderBytes { return .bad(status: 431, reason: "request header too large") }
        guard let text = String(validating: buffer[..<end], as: UTF8.self) else { return .bad(status: 400, reason: "request is not UTF-8") }
        var lines = text.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3 else { return .bad(status: 400, reason: "malformed request line") }
        let method = String(requestLine[0]), target = String(requestLine[1]), version = requestLine[2]
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .bad(status: 505, reason: "HTTP version not supported") }
        guard !method.isEmpty, method.allSatisfy({ $0.isUppercase && $0.isASCII }) else { return .bad(status: 400, reason: "malformed method") }
        guard target.hasPrefix("/"), target.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { return .bad(status: 400, reason: "malformed request target") }
        var headers: [(String, String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { return .bad(status: 400, reason: "malformed header line") }
            let name = line[..<colon]
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return .bad(status: 400, reason: "malformed header name") }
            let value = line[line.index(after: colon)...]
            guard value.unicodeScalars.allSatisfy({ $0 == "\t" || ($0.value >= 32 && $0.value != 127) }) else {
                return .bad(status: 400, reason: "control character in header value")
            }
            headers.append((name.lowercased(), value.trimmingCharacters(in: [" ", "\t"])))
            if headers.count > 64 { return .bad(status: 431, reason: "too many headers") }
        }
        if let length = headers.first(where: { $0.0 == "content-length" })?.1, length != "0" {
            return .bad(status: 413, reason: "request bodies are not accepted")
        }
        if headers.contains(where: { $0.0 == "transfer-encoding" }) { return .bad(status: 413, reason: "request bodies are not accepted") }
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(kv[0])] = kv.count == 2 ? String(kv[1]) : ""
            }
        }
        return .request(Request(method: method, path: String(parts[0]), query: query, headers: headers))
    }

    private func headerEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }
}

import Foundation
