// swift-tools-version:6.1
// Micro-benchmarks on ordo-one/benchmark (wall clock, instructions and malloc counts per
// iteration). A package of its own so that the proxy's build and tests never pull in the harness.
//   swift package --package-path Benchmarks/Micro --disable-sandbox benchmark
import PackageDescription

let package = Package(
    name: "hbone-micro-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "hbone", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HBONEMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "HBONEBenchFixtures", package: "hbone"),
            ],
            path: "Benchmarks/HBONEMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
