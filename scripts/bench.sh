#!/usr/bin/env bash
# Runs the benchmark suite against release builds, each figure beside a baseline from the same run.
#   scripts/bench.sh [handshake|throughput|latency|all]
# Results: bench-results/<UTC timestamp>.txt (kept out of git).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
scripts/install-deps.sh
swift build -c release --product hbone >/dev/null
swift build -c release --product hbone-bench >/dev/null
bin=$(swift build -c release --show-bin-path)
d=$(mktemp -d /tmp/hbone-bench.XXXXXX)
mkdir -p bench-results
out=bench-results/$(date -u +%Y%m%dT%H%M%SZ).txt
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$d"; }
trap cleanup EXIT
scripts/gen-test-pki.sh "$d/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$d/east.yaml" "$d/pki" east 127.0.0.2 cluster-east
write_demo_config "$d/west.yaml" "$d/pki" west 127.0.0.3 cluster-west
exec > >(tee "$out") 2>&1
client="--cert-dir $d/pki/certs-east/payments/checkout --ca $d/pki/bundle-root.pem --expect-id spiffe://cluster.local/ns/payments/sa/ledger --source 127.0.0.10"
echo "# hbone benchmarks $(date -u +%FT%TZ) on $(nproc) cores"
if [ "$what" = all ] || [ "$what" = handshake ]; then
    echo "## full mTLS handshakes, server with one worker"
    "$bin/hbone" proxy --config "$d/west.yaml" --workers 1 --log-level error 2>/dev/null & pids+=($!); wpid=$!
    sleep 1
    echo "### hbone inbound (127.0.0.20:15008)"
    "$bin/hbone-bench" handshake --target 127.0.0.20:15008 $client --concurrency 2 --duration 5 --server-pid $wpid
    kill $wpid; wait $wpid 2>/dev/null || true
    echo "### baseline: openssl s_server -Verify, same certificates, same harness"
    openssl s_server -accept 127.0.0.30:4433 -cert "$d/pki/certs-west/payments/ledger/cert-chain.pem" \
        -cert_chain "$d/pki/west/ca-cert.pem" -key "$d/pki/certs-west/payments/ledger/key.pem" -CAfile "$d/pki/bundle-root.pem" -Verify 3 -tls1_3 \
        -alpn h2 -no_ticket -quiet >/dev/null 2>&1 & pids+=($!); spid=$!
    sleep 1
    "$bin/hbone-bench" handshake --target 127.0.0.30:4433 $client --concurrency 2 --duration 5 --server-pid $spid --allow-no-alpn
    kill $spid; wait $spid 2>/dev/null || true
fi
if [ "$what" = all ] || [ "$what" = throughput ]; then
    echo "## 1-stream bulk upload: app -> east -> west -> sink, and app -> sink directly"
    python3 scripts/lib/echo_server.py 127.0.0.20 9000 --sink & pids+=($!)
    "$bin/hbone" proxy --config "$d/west.yaml" --workers 2 --log-level error 2>/dev/null & pids+=($!); w=$!
    "$bin/hbone" proxy --config "$d/east.yaml" --workers 2 --log-level error 2>/dev/null & pids+=($!); e=$!
    sleep 1
    "$bin/hbone-bench" throughput --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9000 --mib 1024 --runs 3 --pids $e --pids $w
fi
if [ "$what" = all ] || [ "$what" = latency ]; then
    echo "## latency, new connections over a warm pool, memory per idle tunnel and HBONE connection"
    python3 scripts/lib/echo_server.py 127.0.0.20 9001 & pids+=($!)
    if [ -z "${w:-}" ]; then
        "$bin/hbone" proxy --config "$d/west.yaml" --workers 2 --log-level error 2>/dev/null & pids+=($!); w=$!
        "$bin/hbone" proxy --config "$d/east.yaml" --workers 2 --log-level error 2>/dev/null & pids+=($!); e=$!
    fi
    sleep 1
    chain="--socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9001"
    "$bin/hbone-bench" latency $chain --count 5000
    "$bin/hbone-bench" connections $chain --duration 3
    "$bin/hbone-bench" idle $chain --tunnels 1000 --connections 200 --hbone-target 127.0.0.20:15008 \
        --cert-dir "$d/pki/certs-east/payments/checkout" --ca "$d/pki/bundle-root.pem" \
        --expect-id spiffe://cluster.local/ns/payments/sa/ledger --client-pid $e --server-pid $w \
        --client-metrics 127.0.0.2:15020 --server-metrics 127.0.0.3:15020
fi
echo "written to $out"
