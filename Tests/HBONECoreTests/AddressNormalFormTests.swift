import Testing
@testable import HBONECore

/// One address, many spellings: every accepted spelling of an IPv4 address gives the same value,
/// and spellings the network may send but we cannot judge (zones, padding) are refused.
@Suite struct AddressNormalFormTests {
    /// Wire bytes (SOCKS5, xDS) reach the same normal form as text.
    @Test(arguments: [([UInt8]([10, 1, 0, 20]), "10.1.0.20"), ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 20], "10.1.0.20"),
                      ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "fd00::1")] as [([UInt8], String)])
    func networkBytesReachTheNormalForm(bytes: [UInt8], text: String) {
        #expect(IPAddress(networkBytes: bytes) == IPAddress(text))
    }

    @Test(arguments: [0, 3, 5, 15, 17])
    func otherLengthsAreNotAddresses(count: Int) {
        #expect(IPAddress(networkBytes: [UInt8](repeating: 1, count: count)) == nil)
    }

    @Test(arguments: [
        ("127.0.0.20", "127.0.0.20"),
        ("::ffff:127.0.0.20", "127.0.0.20"),            // mapped, dotted
        ("::FFFF:7F00:14", "127.0.0.20"),               // mapped, uppercase hex
        ("0:0:0:0:0:ffff:7f00:14", "127.0.0.20"),       // mapped, uncompressed
        ("0000:0000:0000:0000:0000:ffff:7f00:0014", "127.0.0.20"),  // mapped, zero-padded groups
        ("::127.0.0.20", "127.0.0.20"),                 // compatible (deprecated)
        ("::ffff:0.0.0.0", "0.0.0.0"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::", "::"),
        ("::1", "::1"),
        ("fd00::ffff:7f00:14", "fd00::ffff:7f00:14"),   // not mapped: another /96
    ])
    func spellingsNormalize(text: String, normal: String) throws {
        let ip = try #require(IPAddress(text))
        #expect(ip.description == normal)
        #expect(ip == IPAddress(normal))
    }

    @Test(arguments: [
        "::ffff:127.0.0.020",    // zero-padded octet
        "127.000.000.001",
        "::ffff:127.0.0.20%lo",  // scoped
        "fe80::1%eth0",
        "127.1",                 // inet_aton shorthand
        "0x7f.0.0.1",
        "2130706433",
        "::ffff:127.0.0.256",
        "[::1]",
    ])
    func ambiguousSpellingsAreRefused(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func mappedAddressesAreLoopbackOrUnspecifiedLikeTheirIPv4() throws {
        #expect(try #require(IPAddress("::ffff:127.0.0.1")).isLoopback)
        #expect(try #require(IPAddress("::ffff:0.0.0.0")).isUnspecified)
        #expect(try #require(IPAddress("::")).isUnspecified)
        #expect(try #require(IPAddress("::1")).isLoopback)
    }

    @Test func authoritiesNormalize() {
        #expect(SocketAddress("[::ffff:127.0.0.20]:8080") == SocketAddress("127.0.0.20:8080"))
        #expect(SocketAddress("[::FFFF:7F00:14]:8080")?.description == "127.0.0.20:8080")
        #expect(SocketAddress("[::ffff:127.0.0.20%lo]:8080") == nil)
    }

    @Test func v6InitNormalizes() {
        #expect(IPAddress(v6: 0, 0xffff_7f00_0014) == .v4(0x7f00_0014))
        #expect(IPAddress(v6: 0, 0) == .v6(0, 0))
        #expect(IPAddress(v6: 0, 1) == .v6(0, 1))
    }

    @Test func blocksMatchEverySpelling() throws {
        let block = try #require(CIDR("127.0.0.0/24"))
        #expect(block.contains(try #require(IPAddress("::ffff:127.0.0.20"))))
        let mappedBlock = try #require(CIDR("::ffff:127.0.0.0/120"))
        #expect(mappedBlock == block)
        #expect(mappedBlock.contains(try #require(IPAddress("127.0.0.9"))))
        // A v6 block wider than the mapped range holds IPv4 too: no spelling escapes ::/0.
        #expect(try #require(CIDR("::/0")).contains(try #require(IPAddress("10.1.2.3"))))
        #expect(try #require(CIDR("::ffff:0:0/96")).contains(try #require(IPAddress("10.1.2.3"))))
        #expect(!(try #require(CIDR("fd00::/8")).contains(try #require(IPAddress("10.1.2.3")))))
        #expect(!(try #require(CIDR("10.0.0.0/8")).contains(try #require(IPAddress("fd00::1")))))
        #expect(CIDR("::ffff:10.0.0.0/129") == nil)
    }
}
