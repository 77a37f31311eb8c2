import Testing
import HBONETestSupport
import HBONECore
import HBONEEventLoop
import HBONEH2
@testable import HBONEProxy
#if canImport(Glibc)
import Glibc
#endif

/// The east→west path end to end in memory (`InMemoryMesh`): real TLS, HTTP/2, authorization and
/// pooling, with a virtual clock, so every case runs in milliseconds and always the same way.
@Suite struct InMemoryPathTests {
    @Test func oneByteEcho() throws {
        let mesh = try InMemoryMesh()
        try mesh.serve(port: 8080)
        let app = mesh.connect(to: "10.1.0.20:8080")
        mesh.run()
        app.send([42])
        mesh.run()
        #expect(app.received == [42])
        #expect(mesh.east.hboneConnectionCount == 1 && mesh.west.hboneConnectionCount == 1)
        #expect(mesh.west.openTunnels == 1 && mesh.east.openTunnels == 1)
    }
}
