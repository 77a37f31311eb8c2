import Testing
@testable import HBONECore

/// ztunnel's RUST_LOG in hbone's two scopes.
@Suite struct LogEnvironmentTests {
    @Test func directivesMapOntoTheScopes() throws {
        #expect(try Log.levels(rustLog: "info") == .init(spec: "info", ignoredTargets: []))
        #expect(try Log.levels(rustLog: "warn,access=debug") == .init(spec: "warn,access:debug", ignoredTargets: []))
        #expect(try Log.levels(rustLog: " info , ztunnel::proxy=trace ,hickory_server::server=off,access=OFF")
                == .init(spec: "info,hbone:trace,access:off", ignoredTargets: ["hickory_server::server"]))
        #expect(try Log.levels(rustLog: "ztunnel=debug,hbone=error") == .init(spec: "hbone:debug,hbone:error", ignoredTargets: []))
        #expect(try Log.levels(rustLog: "") == .init(spec: "", ignoredTargets: []))
    }

    @Test func aLevelThatIsNoneIsRefused() {
        for bad in ["loud", "access=loud", "access=", "info,=,x"] {
            #expect(throws: Log.LogSettingError.self, "\(bad)") { try Log.levels(rustLog: bad) }
        }
        do { _ = try Log.levels(rustLog: "info,access=loud") } catch {
            #expect(error.description == "RUST_LOG directive \"access=loud\": \"loud\" is not a level")
        }
    }

    /// The translation applies as /logging would: the later directive wins.
    @Test func theSpecSetsTheLevels() throws {
        let log = Log()
        #expect(log.setLevels(try Log.levels(rustLog: "warn,access=debug,ztunnel::dns=error").spec) == nil)
        #expect(log.levels == "hbone:error,access:debug")
    }
}
