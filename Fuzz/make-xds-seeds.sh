#!/usr/bin/env bash
# Encodes the xDS fuzz seeds (Delta responses in protobuf text format, Fuzz/xds-seeds/*.txtpb) into
# Fuzz/corpus/xds with protoc, from the same .proto files the proxy is generated from.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p Fuzz/corpus/xds
for f in Fuzz/xds-seeds/*.txtpb; do
    protoc -I proto -I /usr/include --encode=envoy.service.discovery.v3.DeltaDiscoveryResponse \
        proto/discovery.proto proto/workload.proto proto/authorization.proto < "$f" > "Fuzz/corpus/xds/$(basename "$f" .txtpb)"
done
