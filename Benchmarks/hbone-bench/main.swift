import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hbone-bench",
        abstract: "Benchmarks for hbone; every figure is printed beside a baseline from the same run, with the command that reproduces it.",
        subcommands: [Handshake.self, Throughput.self, Latency.self, Connections.self, Idle.self, ConnectionMemory.self, Authz.self, Soak.self, Relay.self])
}

Bench.main()
