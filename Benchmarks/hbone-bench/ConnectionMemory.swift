import ArgumentParser
import Foundation
import HBONEBenchFixtures
import HBONEH2
import HBONETLS
import CHBONEPosix
#if canImport(Glibc)
import Glibc
#endif

/// Where the heap of one idle HBONE connection goes, server side, measured in process: a TLS
/// engine after a full mTLS handshake, and an HTTP/2 server session after the client's preface and
/// SETTINGS, then the same session idle (its frame buffer's pages given back, as the proxy's sweep
/// does). The baseline is the heap in use before creating them (glibc mallinfo2 plus the HTTP/2
/// frame buffers, which live on pages of their own), with OpenSSL's block cache emptied first.
struct ConnectionMemory: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connection-memory")
    @Option(help: "Connections to hold.") var count = 500
    @Flag(help: "Keep what the proxy frees after the handshake (peer chains, grown BIOs), to see what that saves.") var keepHandshakeMemory = false
    @OptionGroup var report: ReportOptions

    func run() throws {
        let pki = try InMemoryPKI()
        let cctx = try TLSContext(role: .client, certifiedKey: pki.client, trust: pki.trust)
        let sctx = try TLSContext(role: .server, certifiedKey: pki.server, trust: pki.trust)
        let cache = VerifiedChainCache()
        var servers: [TLSEngine] = []
        let h0 = heapInUse()
        for _ in 0..<count {
            let c = try TLSEngine(context: cctx, verification: .outbound(expected: [InMemoryPKI.serverID]))
            let s = try TLSEngine(context: sctx, verification: .inbound(trustDomains: ["cluster.local"]), chainCache: cache)
            try TunnelPair.handshake(client: c, server: s)
            if !keepHandshakeMemory { s.releaseHandshakeMemory() }
            servers.append(s)
        }
        let h1 = heapInUse()
        var sessions: [H2Session] = []
        let events = StreamEvents()
        for _ in 0..<count {
            let client = try H2Session(role: .client, delegate: nil)
            let server = try H2Session(role: .server, delegate: events)
            var bytes: [UInt8] = []
            try client.produce { bytes += $0 }
            try bytes.withUnsafeBytes { try server.receive($0) }
            bytes = []
            try server.produce { bytes += $0 }
            try bytes.withUnsafeBytes { try client.receive($0) }
            bytes = []
            try client.produce { bytes += $0 }
            try bytes.withUnsafeBytes { try server.receive($0) }
            try server.produce { _ in }
            sessions.append(server)
        }
        let h2 = heapInUse()
        // Two sweeps with nothing sent in between: each idle session gives its frame buffer back.
        for s in sessions { s.releaseIdleMemory(); s.releaseIdleMemory() }
        let h3 = heapInUse()
        let per = { (a: Int, b: Int) in Double(b - a) / 1024 / Double(count) }
        let tls = per(h0, h1), http2 = per(h1, h2), idle = per(h1, h3)
        print(String(format: "server TLS engine after a full mTLS handshake: %.1f KiB", tls))
        print(String(format: "server HTTP/2 session after preface and SETTINGS: %.1f KiB", http2))
        print(String(format: "server HTTP/2 session idle (frame buffer given back): %.1f KiB", idle))
        try report.emit([
            Figure("idle", "server TLS engine after handshake (heap, in process)", value: tls, unit: "KiB", higherIsBetter: false),
            Figure("idle", "server HTTP/2 session after SETTINGS (heap, in process)", value: http2, unit: "KiB", higherIsBetter: false),
            Figure("idle", "server HTTP/2 session idle, frame buffer given back (heap, in process)", value: idle, unit: "KiB", higherIsBetter: false),
        ])
        withExtendedLifetime((servers, sessions)) {}
        printCommand()
    }

    func heapInUse() -> Int {
        TLSLibrary.tickThreadCache()
        TLSLibrary.tickThreadCache()
        return Int(chbone_heap_in_use()) + H2Session.frameBufferBytes
    }
}
