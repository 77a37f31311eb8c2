#!/usr/bin/env bash
# Regenerates Sources/HBONEXDSProto/*.pb.swift from the control plane's proto/*.proto, and
# Sources/HBONEProfile/profile.pb.swift from proto/profile.proto. The generated code is committed:
# builds and CI only compile it. Needs protoc (Debian's protobuf-compiler, installed here) and
# protoc-gen-swift from swift-protobuf 1.39, built once into .build-protogen.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || apt-get install -y protobuf-compiler >/dev/null
tools=.build-protogen
mkdir -p "$tools/Sources/noop"
cat > "$tools/Package.swift" <<'SWIFT'
// swift-tools-version:5.9
import PackageDescription
let package = Package(name: "protogen",
    dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0")],
    targets: [.executableTarget(name: "noop", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")])])
SWIFT
echo 'print("noop")' > "$tools/Sources/noop/main.swift"
(cd "$tools" && swift build -c release --product protoc-gen-swift >/dev/null)
plugin=$(cd "$tools" && swift build -c release --show-bin-path)/protoc-gen-swift
out=Sources/HBONEXDSProto
rm -f "$out"/*.pb.swift
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public --swift_out="$out" \
    -I proto -I /usr/include proto/workload.proto proto/authorization.proto proto/discovery.proto proto/ca.proto proto/zds.proto
rm -f Sources/HBONEProfile/profile.pb.swift
mkdir -p Sources/HBONEProfile
protoc --plugin=protoc-gen-swift="$plugin" --swift_out=Sources/HBONEProfile -I proto proto/profile.proto
echo "generated: $(ls "$out") profile.pb.swift"
