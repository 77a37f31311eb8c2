import Testing
@testable import HBONECore
@Test func placeholderBuilds() { #expect(SocketAddress("1.2.3.4:5") != nil) }
