import Testing
import Foundation
import HBONETestSupport
import HBONEConfig
import HBONEIdentity
import HBONETLS
@testable import HBONEProxy

/// A reload that changed neither the roots, the revocation lists nor an SVID keeps what was built
/// from them: the trust bundle (so its generation, and every loop's verified-chain cache, stay as
/// they were) and each identity's TLS contexts. Anything that did change is built again.
@Suite struct SnapshotReuseTests {
    /// Roots, lists and two SVIDs (east's checkout and frontend) copied where the test may rewrite them.
    final class Files {
        let dir = NSTemporaryDirectory() + "hbone-reuse-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let checkout = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/payments/sa/checkout")
        let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/frontend")

        init() throws {
            let fm = FileManager.default
            for sa in ["payments/checkout", "shop/frontend"] {
                try fm.createDirectory(atPath: "\(dir)/certs/\(sa)", withIntermediateDirectories: true)
                for file in ["cert-chain.pem", "key.pem"] { try write("certs/\(sa)/\(file)", TestPKI.bytes("certs-east/\(sa)/\(file)")) }
            }
            try write("roots.pem", TestPKI.bytes("bundle-root.pem"))
            try write("crl.pem", TestPKI.bytes("crl/west-empty.pem"))
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func write(_ name: String, _ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
        }

        func config() throws -> ProxyConfig {
            try ProxyConfig.parse(yaml: """
                workloads:
                - {uid: c//v1/Pod/payments/checkout-0, name: checkout-0, namespace: payments, serviceAccount: checkout,
                   trustDomain: cluster.local, workloadIps: ["10.0.0.10"], node: east}
                - {uid: c//v1/Pod/shop/frontend-0, name: frontend-0, namespace: shop, serviceAccount: frontend,
                   trustDomain: cluster.local, workloadIps: ["10.0.0.11"], node: east}
                hbone:
                  node: east
                  trustDomain: cluster.local
                  rootCertificates: \(dir)/roots.pem
                  crlPath: \(dir)/crl.pem
                  certificates: {directory: \(dir)/certs}
                """, file: "east.yaml", environment: [:])
        }
    }

    static func load(_ files: Files, previous: ProxyState?) throws -> ProxyState {
        try ProxyState.load(config: files.config(), version: (previous?.version ?? 0) + 1, previous: previous).state
    }

    @Test func aReloadOfUnchangedFilesKeepsTheBundleAndTheContexts() throws {
        let files = try Files()
        let first = try Self.load(files, previous: nil)
        // The same bytes written again (a file event, an xDS push): nothing is rebuilt.
        try files.write("roots.pem", TestPKI.bytes("bundle-root.pem"))
        let second = try Self.load(files, previous: first)
        #expect(second.trust === first.trust)
        #expect(second.trust.generation == first.trust.generation)
        for id in [files.checkout, files.frontend] {
            #expect(second.identities[id]?.server === first.identities[id]?.server)
            #expect(second.identities[id]?.client === first.identities[id]?.client)
            #expect(second.identities[id]?.certifiedKey === first.identities[id]?.certifiedKey, "unchanged files are not parsed again")
        }
    }

    @Test func newRootsOrListsMakeANewBundleAndNewContexts() throws {
        let files = try Files()
        let first = try Self.load(files, previous: nil)
        try files.write("roots.pem", TestPKI.bytes("bundle-root-and-root2.pem"))
        let rotated = try Self.load(files, previous: first)
        #expect(rotated.trust !== first.trust)
        #expect(rotated.trust.roots.count == 2)
        #expect(rotated.identities[files.checkout]?.server !== first.identities[files.checkout]?.server)
        #expect(rotated.identities[files.checkout]?.server.trust === rotated.trust)

        try files.write("crl.pem", TestPKI.bytes("crl/east-revokes-checkout.pem"))
        let revoking = try Self.load(files, previous: rotated)
        #expect(revoking.trust !== rotated.trust)
        #expect(revoking.trust.revocationFingerprint != rotated.trust.revocationFingerprint)
        #expect(revoking.identities[files.frontend]?.client.trust === revoking.trust)

        // No lists at all is not the same as an empty list.
        let empty = try TrustBundle(roots: revoking.trust.roots, revocationLists: [])
        #expect(try TrustBundle.reusing(empty, roots: revoking.trust.roots, revocationLists: nil) !== empty)
        #expect(try TrustBundle.reusing(empty, roots: revoking.trust.roots, revocationLists: []) === empty)
        #expect(try TrustBundle.reusing(empty, roots: revoking.trust.roots.reversed(), revocationLists: []) !== empty, "the roots' order is the file's")
    }

    /// With the Istio CA, every xDS push reloads with the same issued keys and roots: nothing is
    /// rebuilt; new roots from the CA make a new bundle, and every context follows it.
    @Test func anIstioCAReloadKeepsTheBundleAndTheContextsUntilTheRootsChange() throws {
        let config = try ProxyConfig.parse(yaml: """
            workloads:
            - {uid: c//v1/Pod/payments/checkout-0, name: checkout-0, namespace: payments, serviceAccount: checkout,
               trustDomain: cluster.local, workloadIps: ["10.0.0.10"], node: east, protocol: HBONE}
            hbone: {node: east, trustDomain: cluster.local, certificates: {istioCA: true}}
            """, file: "east.yaml", environment: [:])
        let key = try CertifiedKey(directory: TestPKI.path("certs-east/payments/checkout"))
        let roots = try Certificate.parsePEMChain(TestPKI.bytes("bundle-root.pem"))
        var issued = IssuedCertificates(keys: [key.identity: key], roots: roots)
        let first = try ProxyState.load(config: config, version: 1, issued: issued).state
        #expect(first.identities[key.identity] != nil, "\(first.certificateProblems)")
        let second = try ProxyState.load(config: config, version: 2, previous: first, issued: issued).state
        #expect(second.trust === first.trust)
        #expect(second.identities[key.identity]?.server === first.identities[key.identity]?.server)
        issued.roots = try Certificate.parsePEMChain(TestPKI.bytes("bundle-root-and-root2.pem"))
        let third = try ProxyState.load(config: config, version: 3, previous: second, issued: issued).state
        #expect(third.trust !== second.trust && third.trust.roots.count == 2)
        #expect(third.identities[key.identity]?.server !== second.identities[key.identity]?.server)
        #expect(third.identities[key.identity]?.server.trust === third.trust)
    }

    /// A rotated SVID gets new contexts; the other identity keeps its own.
    @Test func aRotatedSVIDGetsNewContextsAndTheOthersKeepTheirs() throws {
        let files = try Files()
        let first = try Self.load(files, previous: nil)
        let ca = try Certificate.parsePEMChain(TestPKI.bytes("east/ca-cert.pem"))[0]
        let caKey = try PrivateKey.parsePEM(TestPKI.bytes("east/ca-key.pem"))
        let (leaf, key) = try CertificateAuthority.issueSVID(files.frontend, ca: ca, caKey: caKey, lifetime: .seconds(3600))
        try files.write("certs/shop/frontend/cert-chain.pem", Array((leaf.pem + ca.pem).utf8))
        try files.write("certs/shop/frontend/key.pem", Array(key.pkcs8PEM.utf8))
        let second = try Self.load(files, previous: first)
        #expect(second.trust === first.trust)
        #expect(second.identities[files.checkout]?.server === first.identities[files.checkout]?.server)
        #expect(second.identities[files.frontend]?.server !== first.identities[files.frontend]?.server)
        #expect(second.identities[files.frontend]?.certifiedKey.leaf.der == leaf.der)
    }
}
