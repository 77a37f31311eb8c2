import ArgumentParser
import HBONECore
import HBONEIdentity
import HBONEApp

/// `hbone check`: day-2 checks that trust is wired.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check an HBONE endpoint or cacerts bundles.",
                                                    subcommands: [Endpoint.self, CACerts.self], defaultSubcommand: Endpoint.self)

    struct Endpoint: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "endpoint",
            abstract: "Handshake with HOST:PORT as an HBONE client and show what it presents.")
        @Argument(help: "HOST:PORT of an HBONE server (…:15008); a host name is resolved.") var target: String
        @Option(help: "Directory with the client SVID (cert-chain.pem, key.pem; root-cert.pem unless --ca).") var certDir: String
        @Option(help: "Trust bundle (default: <cert-dir>/root-cert.pem).") var ca: String?
        @Option(help: "The SPIFFE ID the server must present.") var expectId: String?
        @Option(help: "A trust domain whose servers are trusted (repeatable; default: the trust domain of --cert-dir's SVID, as the proxy trusts its own).")
        var trustDomain: [String] = []
        @Option(help: "Seconds to wait for the connection and each answer.") var timeout: Int = 5
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard timeout > 0 && timeout <= 600 else { throw ValidationError("--timeout must be 1…600 seconds") }
        }

        func run() throws {
            let expected = try expectId.map { s throws -> SPIFFEID in
                do { return try SPIFFEID(parsing: s) } catch { throw ValidationError("--expect-id: \(error)") }
            }
            let report = try runtime {
                var check = EndpointCheck(target: try EndpointCheck.resolve(target), certDirectory: certDir, bundle: ca, expected: expected)
                check.trustDomains = trustDomain
                check.timeout = timeout
                return try check.run()
            }
            print(json ? report.json : report.text, terminator: json ? "\n" : "")
            if !report.trusted { throw ExitCode(1) }
        }
    }

    struct CACerts: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cacerts", abstract: "Check that clusters' cacerts bundles chain to the same root.")
        @Argument(help: "cacerts directories (ca-cert.pem, root-cert.pem, cert-chain.pem).") var dirs: [String]

        func run() throws {
            let (text, ok) = CACertsCheck.run(dirs)
            print(text, terminator: "")
            if !ok { throw ExitCode(1) }
        }
    }
}
