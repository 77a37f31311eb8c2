import ArgumentParser
import Foundation
import HBONECore
import HBONEConfig
import HBONEProxy
import HBONEAdmin
import HBONEApp
#if canImport(Glibc)
import Glibc
#endif

struct HBONECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hbone",
        abstract: "A per-node HBONE proxy: mTLS + HTTP/2 CONNECT tunnels between workloads, SPIFFE-keyed authorization.",
        discussion: """
        Exit status: 0 success; 1 a failure at run time (one "hbone: …" line on stderr, no usage text); 2 a config file that does not load (file:line: path: reason); 64 bad arguments (with the usage).
        """,
        version: HBONEVersion.string,
        subcommands: [ProxyCommand.self, ValidateCommand.self, AdminCommand.self, CACommand.self, CheckCommand.self])
}

enum HBONEVersion {
    static let string = "0.1.0"
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "trace, debug, info, warn, error or off; default: RUST_LOG (ztunnel's: level, access=level, ztunnel=level), else info.")
    var logLevel: String?

    @Option(help: "logfmt or json; default: LOG_FORMAT (json, else logfmt), as ztunnel.")
    var logFormat: String?

    /// The flags, else the variables Istio's ztunnel chart sets (`logLevel`, `logAsJson`). A
    /// RUST_LOG that does not parse stops start-up (exit 2) with the directive and why.
    func apply(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        if let logFormat {
            guard let format = LogFormat(rawValue: logFormat) else { throw ValidationError("--log-format must be logfmt or json") }
            log.format = format
        } else {
            log.format = environment["LOG_FORMAT"] == "json" ? .json : .logfmt
        }
        if let logLevel {
            guard let level = LogLevel(name: logLevel) else { throw ValidationError("--log-level must be trace, debug, info, warn, error or off") }
            log.level = level
        } else if let rustLog = environment["RUST_LOG"], !rustLog.isEmpty {
            do {
                let levels = try Log.levels(rustLog: rustLog)
                log.level = .info
                if !levels.spec.isEmpty, let problem = log.setLevels(levels.spec) {
                    Bug.report("RUST_LOG became levels the logger refuses: \(problem)")
                }
                if !levels.ignoredTargets.isEmpty {
                    log.warn("RUST_LOG: targets that are no part of hbone ignored", ["targets": levels.ignoredTargets.joined(separator: ",")])
                }
            } catch {
                FileHandleOutput.stderr("hbone: environment \(error)\n")
                throw ExitCode(2)
            }
        } else {
            log.level = .info
        }
    }
}

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proxy", abstract: "Run the proxy.")

    @Option(help: "The config file (ztunnel LocalConfig keys plus hbone: settings).")
    var config: String

    @Option(help: "Event loops (threads); default: hbone.workers or one per core.")
    var workers: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let workers, workers < 1 || workers > 256 { throw ValidationError("--workers must be 1-256") }
    }

    func run() throws {
        try logging.apply()
        let status = ProxyApplication(configPath: config, workers: workers, version: HBONEVersion.string).run()
        if status != 0 { throw ExitCode(status) }
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Run the proxy's start-up checks on a config file and exit.",
                                                    discussion: "Exit 0 when `hbone proxy` would start with it, 2 when the config does not load, 1 when the proxy could not start with it (certificates, roots, listen addresses).")

    @Option(help: "The config file.")
    var config: String

    @Flag(help: "Check the file alone (keys, values, policies), not the certificates, roots and listen addresses it names: for a config meant for another machine.")
    var configOnly = false

    /// The same checks as `hbone proxy` before it serves (StartupCheck): exit 0 only when the
    /// proxy would start; 2 for a config that does not load, 1 for one the proxy could not start with.
    func run() throws {
        switch StartupCheck.run(configPath: config, configOnly: configOnly) {
        case let .success(report):
            for w in report.warnings { FileHandleOutput.stderr("hbone: warning: \(w)\n") }
            let c = report.config
            print("\(config): OK (\(c.workloads.count) workloads, \(c.localWorkloads.count) local, \(c.services.count) services, \(c.policies.count) policies)")
        case let .failure(failure):
            FileHandleOutput.stderr("hbone: \(failure.description)\n")
            throw ExitCode(failure.exitCode)
        }
    }
}

/// A subcommand's work. Arguments it refuses (`ValidationError`) stay usage errors (exit 64 with the
/// usage); anything else that fails at run time is one line on stderr and exit 1, without usage text.
func runtime<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ValidationError {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandleOutput.stderr("hbone: \(error)\n")
        throw ExitCode(1)
    }
}

enum FileHandleOutput {
    static func stderr(_ s: String) {
        FileHandle.standardError.write(s.data(using: .utf8)!)
    }
}
