/// Counts a certificate's subject-alternative names straight from its DER, without OpenSSL: an
/// independent reading for the certificate target to hold `LeafFacts` against (a name the SVID
/// rules never saw is a name they could not refuse).
enum SANOracle {
    struct Count: Equatable { var names = 0, uris = 0 }

    /// The names in the certificate's only subjectAltName extension; nil when the DER is not
    /// shaped as expected or the extension is absent or repeated.
    static func count(_ der: [UInt8]) -> Count? {
        guard let cert = element(der, 0), cert.tag == 0x30,
              let tbs = element(der, cert.body.lowerBound), tbs.tag == 0x30 else { return nil }
        // Extensions are the [3] field of TBSCertificate, after the fixed fields.
        var at = tbs.body.lowerBound
        var extensions: Range<Int>?
        while at < tbs.body.upperBound, let e = element(der, at, within: tbs.body.upperBound) {
            if e.tag == 0xa3 { extensions = e.body }
            at = e.body.upperBound
        }
        guard let extensions, let list = element(der, extensions.lowerBound, within: extensions.upperBound), list.tag == 0x30 else { return nil }
        var found: Count?
        at = list.body.lowerBound
        while at < list.body.upperBound {
            guard let ext = element(der, at, within: list.body.upperBound), ext.tag == 0x30,
                  let oid = element(der, ext.body.lowerBound, within: ext.body.upperBound), oid.tag == 0x06 else { return nil }
            at = ext.body.upperBound
            guard Array(der[oid.body]) == [0x55, 0x1d, 0x11] else { continue }
            if found != nil { return nil }
            var field = oid.body.upperBound
            if let critical = element(der, field, within: ext.body.upperBound), critical.tag == 0x01 { field = critical.body.upperBound }
            guard let value = element(der, field, within: ext.body.upperBound), value.tag == 0x04,
                  let names = element(der, value.body.lowerBound, within: value.body.upperBound), names.tag == 0x30 else { return nil }
            var count = Count()
            var n = names.body.lowerBound
            while n < names.body.upperBound {
                guard let name = element(der, n, within: names.body.upperBound) else { return nil }
                count.names += 1
                if name.tag == 0x86 { count.uris += 1 }
                n = name.body.upperBound
            }
            found = count
        }
        return found
    }

    /// One TLV at `offset` (single-byte tags, definite lengths up to four bytes), inside `limit`.
    static func element(_ der: [UInt8], _ offset: Int, within limit: Int? = nil) -> (tag: UInt8, body: Range<Int>)? {
        let end = min(limit ?? der.count, der.count)
        guard offset + 2 <= end else { return nil }
        let tag = der[offset]
        var length = Int(der[offset + 1])
        var start = offset + 2
        if length & 0x80 != 0 {
            let bytes = length & 0x7f
            guard bytes >= 1, bytes <= 4, start + bytes <= end else { return nil }
            length = der[start..<(start + bytes)].reduce(0) { $0 << 8 | Int($1) }
            start += bytes
        }
        guard length <= end - start else { return nil }
        return (tag, start..<(start + length))
    }
}
