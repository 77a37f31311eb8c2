#!/usr/bin/env bash
# What a CPU profile (/debug/pprof/profile) and heap profiling (/debug/pprof/heap) cost the proxy
# while they run: server CPU per full mTLS handshake on one worker, in alternating runs without a
# profile, with one at 100 Hz (the default), with one at 1000 Hz (the most the endpoint takes) and
# with heap profiling active (a heap profile fetched at the end of each such run); each figure over
# the plain runs of the same invocation. The profiles taken are kept in the printed directory
# (go tool pprof -top FILE). What the heap sampler costs while off, which a timing here cannot
# resolve, is counted in instructions by scripts/bench-heap-sampler.sh.
#   scripts/bench-profiler.sh [ROUNDS]    (default 3 rounds of 5 s per figure)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
source scripts/lib/release-build.sh
release_build
d=$(mktemp -d /tmp/hbone-profiler.XXXXXX)
scripts/gen-test-pki.sh "$d/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$d/west.yaml" "$d/pki" west 127.0.0.3
"$bin/hbone" proxy --config "$d/west.yaml" --workers 1 --log-level error 2>/dev/null & wpid=$!
trap 'kill -9 $wpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.20/15008) 2>/dev/null && break; sleep 0.1; done
: > "$d/figures.jsonl"
run() {
    "$bin/hbone-bench" handshake --target 127.0.0.20:15008 --cert-dir "$d/pki/certs-east/payments/checkout" --ca "$d/pki/bundle-root.pem" \
        --source 127.0.0.10 --expect-id spiffe://cluster.local/ns/payments/sa/ledger --concurrency 2 --duration 5 --server-pid "$wpid" \
        --server-workers 1 --label "$1" --json "$d/figures.jsonl" | grep "server CPU per handshake" | sed "s/^/$1: /"
}
profiled() {
    curl -s -m 30 -o "$d/profile-$1hz-$2.pb" "http://127.0.0.3:15000/debug/pprof/profile?seconds=6&frequency=$1" & local c=$!
    sleep 0.3
    run "profile at $1 Hz"
    wait "$c"
}
heap() {
    curl -sf -m 5 "http://127.0.0.3:15000/debug/pprof/heap/profiling?activate=true" >/dev/null
    run "heap profiling"
    curl -sf -m 30 -o "$d/heap-$1.pb" "http://127.0.0.3:15000/debug/pprof/heap"
    curl -sf -m 5 "http://127.0.0.3:15000/debug/pprof/heap/profiling?activate=false" >/dev/null
}
for r in $(seq "$rounds"); do
    run plain
    profiled 100 "$r"
    profiled 1000 "$r"
    heap "$r"
done
python3 - "$d/figures.jsonl" <<'PY'
import json, statistics, sys
figures = [json.loads(l) for l in open(sys.argv[1])]
def per(label):
    return [f["value"] for f in figures if f["name"] == label + ": server CPU per handshake"]
plain = statistics.median(per("plain"))
print("median server CPU per handshake: plain %.3f ms" % plain)
for label in ("profile at 100 Hz", "profile at 1000 Hz", "heap profiling"):
    v = statistics.median(per(label))
    print("  %-20s %.3f ms  (%.3fx plain)" % (label + ":", v, v / plain))
PY
echo "profiles: $d/*.pb    command: scripts/bench-profiler.sh $rounds"
