import Foundation
import Testing
import HBONETestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The Python control plane (`scripts/lib/fake_istiod.py`, grpcio): Delta ADS and the Istio CA over
/// TLS with istiod's test certificate, scripted through its JSON API. It must start: a test that
/// needs it fails when it cannot, never skips.
final class FakeIstiod {
    let process: Process
    let grpcPort: Int
    let controlPort: Int
    let log: String

    /// The test Python environment (grpcio, protobuf, cryptography; modules from proto/), made once;
    /// a test that cannot have it fails (it never skips).
    static func environment() throws -> String {
        try cachedEnvironment.get()
    }

    private static let cachedEnvironment: Result<String, MeshError> = {
        let (status, output) = (try? runProgram(repositoryRoot + "/scripts/lib/pyenv.sh", [], includeErrors: true)) ?? (1, "cannot run")
        guard status == 0 else { return .failure(MeshError("scripts/lib/pyenv.sh failed (the test control plane needs it): \(output.suffix(2000))")) }
        return .success(String(output.split(separator: "\n").last ?? "").trimmingCharacters(in: .whitespaces))
    }()

    /// `tokens`: bearer token → node, as istiod's node authorizer would resolve them.
    init(dir: String, tokens: [String: String]) throws {
        let pki = TestPKI.directory
        log = dir + "/istiod.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let python = try FakeIstiod.environment()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python + "/bin/python")
        p.arguments = [repositoryRoot + "/scripts/lib/fake_istiod.py", "--proto-dir", python + "/proto",
                       "--serving-chain", pki + "/istiod/cert-chain.pem", "--serving-key", pki + "/istiod/key.pem",
                       "--ca", pki + "/east", "--foreign-ca", pki + "/other"] + tokens.map { ["--token", "\($0.key)=\($0.value)"] }.joined()
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        process = p
        // The first line names the ports; nothing else is written to stdout.
        var line = Data()
        let handle = pipe.fileHandleForReading
        while !line.contains(0x0a) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let g = obj["grpc_port"] as? Int, let c = obj["control_port"] as? Int else {
            p.terminate()
            throw MeshError("the fake istiod did not start; see \(log): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        grpcPort = g
        controlPort = c
    }

    var address: String { "https://127.0.0.1:\(grpcPort)" }

    @discardableResult
    func post(_ path: String, _ body: Any) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let (status, output) = try runProgram("/usr/bin/curl", ["-s", "-XPOST", "-H", "content-type: application/json",
                                                                "--data-binary", String(decoding: data, as: UTF8.self),
                                                                "http://127.0.0.1:\(controlPort)\(path)"])
        guard status == 0, let obj = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
            throw MeshError("fake istiod \(path): \(output)")
        }
        if let error = obj["error"] { throw MeshError("fake istiod \(path): \(error)") }
        return obj
    }

    func push(_ resources: [[String: Any]], type: String = "address", removed: [String] = []) throws {
        try post("/xds/push", ["type": type, "resources": resources, "removed": removed])
    }

    func requests(_ kind: String) -> [[String: Any]] {
        let output = (try? runProgram("/usr/bin/curl", ["-s", "http://127.0.0.1:\(controlPort)/requests?kind=\(kind)"]).output) ?? "[]"
        return ((try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [[String: Any]]) ?? []
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }

    /// An `Address` resource holding a workload, named by its uid as istiod names them; `extra`:
    /// more of its fields (protobuf JSON names), set over these.
    static func workload(_ name: String, namespace: String = "payments", serviceAccount: String, ip: String, node: String,
                         protocol: String = "HBONE", policies: [String] = [], extra: [String: Any] = [:]) -> [String: Any] {
        let uid = "Kubernetes//Pod/\(namespace)/\(name)"
        let fields: [String: Any] = [
            "uid": uid, "name": name, "namespace": namespace, "serviceAccount": serviceAccount, "trustDomain": "cluster.local",
            "addresses": [ip], "tunnelProtocol": `protocol`, "node": node, "authorizationPolicies": policies,
        ]
        return ["name": uid, "address": ["workload": fields.merging(extra) { $1 }]]
    }
}
