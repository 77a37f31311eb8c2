import Foundation
import Testing
import HBONETestSupport
import HBONEConfig

/// The configs we ship or generate must load: a key the parser no longer knows would stop the demo
/// or an operator's copy of an example at start-up.
@Suite struct ShippedConfigTests {
    @Test(arguments: ["config/examples/node-east.yaml", "config/examples/node-west.yaml"])
    func examplesLoad(_ path: String) throws {
        let config = try ProxyConfig.load(file: repositoryRoot + "/" + path)
        #expect(!config.localWorkloads.isEmpty)
    }

    @Test(arguments: ["east", "west"])
    func theDemoConfigsLoad(_ node: String) throws {
        let out = NSTemporaryDirectory() + "hbone-demo-config-\(getpid())-\(node).yaml"
        let script = "source '\(repositoryRoot)/scripts/lib/demo-config.sh' && write_demo_config '\(out)' '\(TestPKI.directory)' \(node) 127.0.0.2"
        #expect(run("/bin/bash", ["-c", script]) == 0)
        let config = try ProxyConfig.load(file: out)
        #expect(config.settings.node == node)
    }

    @Test(arguments: ["east", "west"])
    func theControlPlaneDemoConfigsLoad(_ node: String) throws {
        let out = NSTemporaryDirectory() + "hbone-demo-cp-config-\(getpid())-\(node).yaml"
        let script = "source '\(repositoryRoot)/scripts/lib/demo-config.sh' && write_control_plane_config '\(out)' '\(TestPKI.directory)' \(node) 127.0.0.2 https://127.0.0.1:15012 /tmp/token"
        #expect(run("/bin/bash", ["-c", script]) == 0)
        let config = try ProxyConfig.load(file: out)
        #expect(config.settings.certificates == .istioCA && config.workloads.isEmpty)
        #expect(config.settings.controlPlane.xdsAddress?.description == "https://127.0.0.1:15012")
    }
}
