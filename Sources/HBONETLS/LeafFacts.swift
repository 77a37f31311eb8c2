/// What the SVID rules read from a peer's leaf certificate, as a value: a verified chain's entry in
/// the `VerifiedChainCache` keeps it, so a cache hit applies the rules without decoding the leaf's
/// extensions again.
public struct LeafFacts: Sendable, Hashable {
    /// Every subject-alternative name, of any type.
    public var sanCount: Int
    public var uris: [String]
    public var isCA: Bool
    public var allowsDigitalSignature: Bool
    public var allowsClientAuth: Bool
    public var allowsServerAuth: Bool

    public init(sanCount: Int, uris: [String], isCA: Bool, allowsDigitalSignature: Bool, allowsClientAuth: Bool, allowsServerAuth: Bool) {
        self.sanCount = sanCount
        self.uris = uris
        self.isCA = isCA
        self.allowsDigitalSignature = allowsDigitalSignature
        self.allowsClientAuth = allowsClientAuth
        self.allowsServerAuth = allowsServerAuth
    }

    public init(_ leaf: Certificate) {
        let sans = leaf.subjectAltNames
        self.init(sanCount: sans.count, uris: sans.uris, isCA: leaf.isCA, allowsDigitalSignature: leaf.allowsDigitalSignature,
                  allowsClientAuth: leaf.allowsClientAuth, allowsServerAuth: leaf.allowsServerAuth)
    }
}
