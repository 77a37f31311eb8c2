import HBONEEventLoop
import HBONETLS

/// A peer proxy speaking real TLS with a valid SVID, whose HTTP/2 is a fixed script: it sends
/// `script` once, as plaintext in records of `record` bytes for the first KiB and 16 KiB after,
/// when the handshake completes (`.afterHandshake`, a client) or when the other side's first
/// plaintext arrives (`.afterFirstPlaintext`, a server answering a CONNECT). What it reads is
/// dropped.
final class ScriptedPeer: TCPStreamDelegate {
    enum Moment { case afterHandshake, afterFirstPlaintext }

    var stream: TCPStream!
    let tls: TLSEngine
    let script: [UInt8]
    let record: Int
    let when: Moment
    let halfClose: Bool
    private var established = false
    private var sent = false
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)

    init(tls: TLSEngine, script: [UInt8], record: Int, when: Moment, halfClose: Bool) {
        self.tls = tls
        self.script = script
        self.record = record
        self.when = when
        self.halfClose = halfClose
    }

    func tcpStreamConnected(_ stream: TCPStream) { advance() }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) {}
    func tcpStreamReadClosed(_ stream: TCPStream) {}

    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) {
        tls.feed(bytes)
        advance()
    }

    private func advance() {
        if !established {
            switch tls.handshake() {
            case .complete: established = true
            case .inProgress: flush(); return
            case .failed: flush(); stream.abort(); return
            }
        }
        var heard = false
        while case let .bytes(n) = scratch.withUnsafeMutableBytes({ tls.read(into: $0) }), n > 0 { heard = true }
        if !sent && (when == .afterHandshake || heard) {
            sent = true
            var offset = 0
            while offset < script.count {
                // Small records only at the start: tens of thousands of them would make each run slow.
                let end = min(script.count, offset + (offset < 1024 ? record : 16 * 1024))
                _ = script[offset..<end].withUnsafeBytes { tls.write($0) }
                offset = end
            }
            flush()
            if halfClose { stream.shutdownWrite() }
        }
        flush()
    }

    private func flush() { tls.takeCiphertext { stream.write($0) } }

    /// The input's mode byte: bits 2–3 pick the record size of the first KiB.
    static func recordSize(mode: UInt8) -> Int { [16 * 1024, 1, 7, 100][Int(mode >> 2) & 3] }
}

/// An application's end that reads and forgets, or echoes.
final class ApplicationEnd: TCPStreamDelegate {
    var stream: TCPStream!
    let echo: Bool
    init(echo: Bool) { self.echo = echo }
    func tcpStreamConnected(_ stream: TCPStream) {}
    func tcpStream(_ stream: TCPStream, received bytes: UnsafeRawBufferPointer) { if echo { stream.write(bytes) } }
    func tcpStreamReadClosed(_ stream: TCPStream) { if echo { stream.shutdownWrite() } }
    func tcpStream(_ stream: TCPStream, wrote count: Int) {}
    func tcpStream(_ stream: TCPStream, failed errno: Int32) {}
}
