import Foundation
import Testing
import HBONETestSupport

/// Two real proxies on loopback; each test gets its own /24 so suites may run side by side.
@Suite(.serialized) struct TunnelTests {
    @Test func oneByteEcho() throws {
        let mesh = try Mesh(net: 41)
        defer { mesh.stop() }
        let r = try mesh.client("echo", ["--size", "1"])
        #expect(r["intact"] as? Bool == true)
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("src.identity=spiffe://cluster.local/ns/payments/sa/checkout") && $0.contains("direction=inbound") })
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("dst.identity=spiffe://cluster.local/ns/payments/sa/ledger") })
    }

    @Test func sixtyFourMebibytesEachWayIntact() throws {
        let mesh = try Mesh(net: 42)
        defer { mesh.stop() }
        let r = try mesh.client("echo", ["--size", "\(64 << 20)"])
        #expect(r["intact"] as? Bool == true, "\(r)")
        #expect(r["received"] as? Int == 64 << 20)
    }

    @Test func twoHundredConcurrentTunnelsShareAtMostThreeConnections() throws {
        let mesh = try Mesh(net: 43, { var o = Mesh.Options(); o.logLevel = "debug"; return o }())
        defer { mesh.stop() }
        let r = try mesh.client("concurrent", ["--count", "200"])
        #expect(r["ok"] as? Int == 200, "\(r)")
        let established = mesh.log(mesh.westLog).components(separatedBy: "HBONE connection established role=server").count - 1
        #expect(established >= 1 && established <= 3, "west accepted \(established) HBONE connections")
    }

    @Test func halfCloseFromTheClientStillReturnsEverything() throws {
        let mesh = try Mesh(net: 44)
        defer { mesh.stop() }
        let r = try mesh.client("halfclose")
        #expect(r["intact"] as? Bool == true, "\(r)")
    }

    @Test func halfCloseFromTheServerStillCarriesTheClientsBytes() throws {
        let mesh = try Mesh(net: 50)
        defer { mesh.stop() }
        let record = mesh.dir + "/half-close.txt"
        try mesh.start("/usr/bin/env", ["python3", repositoryRoot + "/scripts/lib/echo_server.py", mesh.westIP, "8081", "--half-close-first", record],
                       log: mesh.dir + "/half.log")
        #expect(waitForPort(mesh.westIP, 8081))
        let r = try mesh.client("serverfirst", dest: "\(mesh.westIP):8081", ["--size", "100000"])
        #expect(r["greeting"] as? String == "hello, I am done talking\n")
        #expect(mesh.waitForLog(record) { $0.contains("100000") }, "server counted: \(mesh.log(record))")
    }

    @Test func upstreamRefusedClosesTheAppConnectionAndLogs503() throws {
        let mesh = try Mesh(net: 45)
        defer { mesh.stop() }
        let r = try mesh.client("expect-fail", dest: "\(mesh.westIP):8999")
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("503") })
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("error=\"503: upstream connect") })
    }

    @Test func serverWithUnexpectedIdentityGetsNoTunnel() throws {
        // East believes ledger runs as service account "audit"; west presents ledger's SVID.
        let mesh = try Mesh(net: 46, { var o = Mesh.Options(); o.ledgerServiceAccountSeenByEast = "audit"; return o }())
        defer { mesh.stop() }
        let r = try mesh.client("expect-fail")
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("server presented spiffe://cluster.local/ns/payments/sa/ledger, expected one of spiffe://cluster.local/ns/payments/sa/audit") })
        #expect(!mesh.log(mesh.westLog).contains("direction=inbound"))
    }

    @Test func clientCertificateFromUnrelatedRootIsRefused() throws {
        var o = Mesh.Options()
        o.eastCertificates = "certs-other"
        o.eastBundle = "bundle-root-and-other.pem"
        let mesh = try Mesh(net: 47, o)
        defer { mesh.stop() }
        let r = try mesh.client("expect-fail")
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("HBONE handshake failed role=server") && $0.contains("unable to get local issuer certificate") })
        #expect(!mesh.log(mesh.westLog).contains("direction=inbound"))
    }

    @Test func denyPolicyAnswers401AndMakesNoUpstreamConnection() throws {
        var o = Mesh.Options()
        o.westPolicies = """
        policies:
        - name: deny-checkout
          namespace: payments
          scope: Namespace
          action: Deny
          rules:
          - - - principals: ["cluster.local/ns/payments/sa/checkout"]
        """
        let mesh = try Mesh(net: 48, o)
        defer { mesh.stop() }
        let r = try mesh.client("expect-fail")
        #expect(r["failed"] as? Bool == true, "\(r)")
        #expect(mesh.waitForLog(mesh.westLog) { $0.contains("401: authorization denied: DENY policy payments/deny-checkout matched") })
        #expect(mesh.waitForLog(mesh.eastLog) { $0.contains("401") })
    }

    /// Not under a sanitizer: its shadow memory and quarantine are not the proxy's buffering.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["HBONE_SANITIZED"] == nil))
    func slowReaderKeepsProxyMemoryBounded() throws {
        let mesh = try Mesh(net: 49)
        defer { mesh.stop() }
        let before = (mesh.rssKiB(of: 1), mesh.rssKiB(of: 2))
        // The client pushes up to 256 MiB while reading nothing; flow control must stop it early.
        let r = try mesh.client("slow", ["--size", "\(256 << 20)"], environment: ["SLOW_HOLD": "0"])
        let sent = r["sent_before_stall"] as? Int ?? Int.max
        let after = (mesh.rssKiB(of: 1), mesh.rssKiB(of: 2))
        #expect(sent < 64 << 20, "client could push \(sent) bytes into a non-reading tunnel")
        #expect(after.0 - before.0 < 48 * 1024 && after.1 - before.1 < 48 * 1024, "RSS grew \(before) → \(after) KiB")
    }
}
