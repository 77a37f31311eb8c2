import HBONEIdentity
import HBONETLS

/// SVIDs the Istio CA signed for local workloads (`certificates.istioCA`), handed to a reload.
public struct IssuedCertificates: Sendable {
    public var keys: [SPIFFEID: CertifiedKey]
    /// Roots that came with the CA's answers: the trust bundle when no root file is configured.
    public var roots: [Certificate]
    /// Why each identity without a certificate has none (logged, and shown by readiness).
    public var problems: [SPIFFEID: String]

    public init(keys: [SPIFFEID: CertifiedKey] = [:], roots: [Certificate] = [], problems: [SPIFFEID: String] = [:]) {
        self.keys = keys
        self.roots = roots
        self.problems = problems
    }
}
