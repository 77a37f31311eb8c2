import HBONEConfig

extension Service {
    /// Whether the hostname is made only of DNS characters, so it may go into a header (`forwarded`'s
    /// `host=`) or a CONNECT's authority: it comes from the control plane, and a quote or a line
    /// break must not reach either.
    var hasDNSHostname: Bool {
        !hostname.isEmpty && hostname.utf8.count <= 253 && hostname.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z"))
                || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
    }
}
