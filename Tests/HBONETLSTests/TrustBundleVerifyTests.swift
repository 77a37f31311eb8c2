import Foundation
import Testing
@testable import HBONETLS

/// `TrustBundle.verify`: our own SVIDs are checked against the bundle before we present them.
@Suite struct TrustBundleVerifyTests {
    @Test func aChainUnderTheBundleVerifies() throws {
        let h = try Hierarchy.make()
        #expect(try h.bundle.verify(chain: h.leaf().chain) == nil)
        let deep = try Hierarchy.make(depth: 2, pathlen: [1, 0])
        #expect(try deep.bundle.verify(chain: deep.leaf().chain) == nil)
    }

    @Test func chainsThatDoNotEndAtTheBundleAreRefusedWithOpenSSLsReason() throws {
        let h = try Hierarchy.make()
        let other = try Hierarchy.make()
        #expect(try other.bundle.verify(chain: h.leaf().chain) == "unable to get local issuer certificate")
        #expect(try h.bundle.verify(chain: h.leaf(includeIntermediates: false).chain) == "unable to get local issuer certificate")
        #expect(try h.bundle.verify(chain: []) == "empty certificate chain")
    }

    @Test func validityIsJudgedAtTheGivenTime() throws {
        let h = try Hierarchy.make()
        let leaf = try h.leaf(validity: 3600, backdate: 60)
        #expect(try h.bundle.verify(chain: leaf.chain, at: Date().addingTimeInterval(7200)) == "certificate has expired")
        #expect(try h.bundle.verify(chain: leaf.chain, at: Date()) == nil)
    }

    /// A chain accepted once is accepted again without verifying (every reload asks for every local
    /// SVID), but only while the time stays inside every validity period of the path it verified
    /// along: here the intermediate expires a day before the leaf does.
    @Test func anAcceptedChainIsAnsweredAgainOnlyInsideItsPathsValidity() throws {
        let h = try Hierarchy.make()
        let bundle = try h.bundle
        let leaf = try h.leaf(validity: 3 * 86400, backdate: 60)
        #expect(bundle.verify(chain: leaf.chain, at: Date()) == nil)
        #expect(bundle.verify(chain: leaf.chain, at: Date().addingTimeInterval(600)) == nil)
        #expect(bundle.verify(chain: leaf.chain, at: Date().addingTimeInterval(2 * 86400)) == "certificate has expired",
                "the intermediate has expired, though the leaf has not")
        #expect(bundle.verify(chain: leaf.chain, at: Date().addingTimeInterval(-3600)) == "certificate is not yet valid")
        #expect(bundle.verify(chain: leaf.chain, at: Date()) == nil)
        // Another bundle's answer is its own.
        #expect(try Hierarchy.make().bundle.verify(chain: leaf.chain, at: Date()) == "unable to get local issuer certificate")
    }
}
