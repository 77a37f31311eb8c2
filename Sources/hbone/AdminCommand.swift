import ArgumentParser
import HBONECore
import HBONEApp

/// `hbone admin certs|workloads|policies|config|controlplane`: readable tables from a running proxy's config_dump.
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Show what a running proxy holds (reads its admin API).")

    @Argument(help: "certs, workloads, policies, config or controlplane.") var what: AdminClient.View
    @Option(help: "The admin address.") var admin = "127.0.0.1:15000"

    func run() throws {
        guard let address = SocketAddress(admin) else { throw ValidationError("--admin must be ip:port") }
        do {
            print(AdminClient.render(what, try AdminClient.configDump(address)), terminator: "")
        } catch {
            FileHandleOutput.stderr("hbone: cannot read \(admin)/config_dump: \(error)\n")
            throw ExitCode(1)
        }
    }
}

extension AdminClient.View: ExpressibleByArgument {}
