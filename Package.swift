// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "hbone",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hbone", targets: ["hbone"]),
        .executable(name: "hbone-bench", targets: ["hbone-bench"]),
        .executable(name: "hbone-fuzz", targets: ["hbone-fuzz"]),
        // For the ordo-one micro-benchmarks in Benchmarks/Micro (a separate package).
        .library(name: "HBONEBenchFixtures", targets: ["HBONEBenchFixtures", "HBONECore", "HBONEIdentity", "HBONEAuthz", "HBONETLS", "HBONEH2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // C edges. Only the wrapper modules named below import them.
        .target(name: "CHBONEPosix"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2",
                       providers: [.apt(["libnghttp2-dev"])]),
        .target(name: "CHBONEOpenSSLShim", dependencies: ["COpenSSL"]),

        // Pure value types and engines: no sockets, no OpenSSL.
        .target(name: "HBONECore", dependencies: [.product(name: "Atomics", package: "swift-atomics")]),
        .target(name: "HBONEIdentity", dependencies: ["HBONECore"]),
        .target(name: "HBONEAuthz", dependencies: ["HBONECore", "HBONEIdentity"]),
        // gRPC framing, status and reconnect policy for the control-plane client (bytes only).
        .target(name: "HBONEGRPC", dependencies: ["HBONECore"]),
        .target(name: "HBONEConfig", dependencies: [
            "HBONECore", "HBONEIdentity", "HBONEAuthz",
            .product(name: "Yams", package: "Yams"),
        ]),

        // Wrappers that work on bytes or file descriptors.
        .target(name: "HBONEEventLoop", dependencies: [
            "HBONECore", "CHBONEPosix",
            .product(name: "Atomics", package: "swift-atomics"),
        ]),
        .target(name: "HBONETLS", dependencies: ["HBONECore", "HBONEIdentity", "COpenSSL", "CHBONEOpenSSLShim"]),
        .target(name: "HBONEH2", dependencies: ["HBONECore", "CNghttp2"]),

        // The proxy wires them to the reactor.
        .target(name: "HBONEProxy", dependencies: [
            "HBONECore", "HBONEIdentity", "HBONEAuthz", "HBONEConfig",
            "HBONEEventLoop", "HBONETLS", "HBONEH2",
            .product(name: "Atomics", package: "swift-atomics"),
        ]),
        .target(name: "HBONEAdmin", dependencies: ["HBONECore", "HBONEEventLoop", "HBONEProxy", "HBONEConfig", "HBONETLS"]),
        // The application: signals, the file watcher, reloads (`hbone proxy` only parses arguments).
        .target(name: "HBONEApp", dependencies: ["HBONECore", "HBONEConfig", "HBONEProxy", "HBONEAdmin", "HBONETLS", "HBONEIdentity"]),
        .executableTarget(name: "hbone", dependencies: [
            "HBONECore", "HBONEConfig", "HBONEProxy", "HBONEAdmin", "HBONEApp", "HBONETLS", "HBONEIdentity",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "hbone-bench", dependencies: [
            "HBONECore", "HBONETLS", "HBONEIdentity", "HBONEAuthz", "HBONEH2", "HBONEBenchFixtures", "CHBONEPosix", "HBONEEventLoop",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], path: "Benchmarks/hbone-bench"),
        // Inputs shared by hbone-bench and the micro-benchmarks: policy sets, an in-memory PKI and
        // an in-memory client/server pair (TLS engines + HTTP/2 sessions).
        .target(name: "HBONEBenchFixtures", dependencies: [
            "HBONECore", "HBONEIdentity", "HBONEAuthz", "HBONETLS", "HBONEH2",
        ], path: "Benchmarks/Fixtures"),
        // libFuzzer targets for every parser of untrusted input (scripts/fuzz.sh builds them with
        // -sanitize=fuzzer); a normal build replays the committed corpus (Fuzz/corpus).
        .executableTarget(name: "hbone-fuzz", dependencies: [
            "HBONECore", "HBONEIdentity", "HBONEConfig", "HBONEProxy", "HBONEAdmin", "HBONEH2", "HBONETLS", "HBONEBenchFixtures", "HBONEGRPC",
        ], path: "Fuzz/hbone-fuzz"),
        .target(name: "HBONETestSupport", dependencies: ["HBONECore"], path: "Tests/HBONETestSupport"),
        .testTarget(name: "HBONECoreTests", dependencies: ["HBONETestSupport", "HBONECore"]),
        .testTarget(name: "HBONEIdentityTests", dependencies: ["HBONETestSupport", "HBONEIdentity"]),
        .testTarget(name: "HBONEAuthzTests", dependencies: ["HBONETestSupport", "HBONEAuthz", "HBONEIdentity", "HBONECore"]),
        .testTarget(name: "HBONEConfigTests", dependencies: ["HBONETestSupport", "HBONEConfig", "HBONEAuthz", "HBONEIdentity", "HBONECore"]),
        .testTarget(name: "HBONEEventLoopTests", dependencies: ["HBONETestSupport", "HBONEEventLoop", "CHBONEPosix"]),
        .testTarget(name: "HBONETLSTests", dependencies: ["HBONETestSupport", "HBONETLS", "HBONEIdentity"]),
        .testTarget(name: "HBONEH2Tests", dependencies: ["HBONETestSupport", "HBONEH2"]),
        .testTarget(name: "HBONEProxyTests", dependencies: ["HBONETestSupport", "HBONEProxy", "HBONEConfig", "HBONECore", "HBONETLS", "HBONEIdentity", "HBONEH2", "HBONEEventLoop"]),
        .testTarget(name: "HBONEGRPCTests", dependencies: ["HBONEGRPC"]),
        .testTarget(name: "HBONEAdminTests", dependencies: ["HBONETestSupport", "HBONEAdmin"]),
        .testTarget(name: "HBONEAppTests", dependencies: ["HBONETestSupport", "HBONEApp", "HBONEConfig", "HBONETLS", "HBONEIdentity"]),
        // Depends on the executables so `swift build --build-tests` never leaves a stale binary to test.
        .testTarget(name: "HBONEIntegrationTests", dependencies: ["HBONETestSupport", "HBONECore", "hbone", "hbone-bench"]),
    ]
)
