#!/usr/bin/env bash
# What the heap sampler (the hbone binary's own malloc family) costs per server handshake, off and
# on, in instructions counted exactly under callgrind (a timing on this machine cannot resolve it):
# the proxy with one worker, counters zeroed after warm-up handshakes and dumped after more; then
# the self cost of the malloc family's wrappers and the inclusive cost of taking samples.
#   scripts/bench-heap-sampler.sh [OTHER_HBONE]   (OTHER_HBONE: a build to compare, e.g. one before the sampler)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/release-build.sh
release_build quiet
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
d=$(mktemp -d /tmp/hbone-heap-sampler.XXXXXX)
scripts/gen-test-pki.sh "$d/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$d/west.yaml" "$d/pki" west 127.0.0.3
# valgrind 3.19 cannot read the DWARF 5 the toolchain writes: measure copies without it.
strip --strip-debug -o "$d/hbone" "$bin/hbone"
[ -n "${1-}" ] && strip --strip-debug -o "$d/hbone-other" "$1"
handshakes() {
    "$bin/hbone-bench" handshake --target 127.0.0.20:15008 --cert-dir "$d/pki/certs-east/payments/checkout" --ca "$d/pki/bundle-root.pem" \
        --source 127.0.0.10 --expect-id spiffe://cluster.local/ns/payments/sa/ledger --concurrency 1 --duration "$1" 2>&1 |
        sed -n 's/.*(n=\([0-9]*\),.*/\1/p'
}
measure() {  # LABEL BINARY ACTIVATE
    valgrind --tool=callgrind --callgrind-out-file="$d/cg-$1.%p" "$2" proxy --config "$d/west.yaml" --workers 1 --log-level error 2>/dev/null &
    local pid=$!
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.20/15008) 2>/dev/null && break; sleep 0.1; done
    if [ "$3" = yes ]; then
        for _ in 1 2 3 4 5; do curl -sf -m 20 "http://127.0.0.3:15000/debug/pprof/heap/profiling?activate=true" >/dev/null && break; sleep 1; done
    fi
    handshakes 3 >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local n; n=$(handshakes 6)
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$1" "$n" "$(ls "$d"/cg-"$1".*.1 | head -1)" <<'PY'
import re, subprocess, sys
label, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def costs(inclusive):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=" + inclusive, path], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) .*?\?\?\?:(\w+) \[.*/hbone(-other)?\]", line)
        if m: found[m.group(2)] = int(m.group(1).replace(",", ""))
    total = re.search(r"([\d,]+) .*PROGRAM TOTALS", out)
    return found, int(total.group(1).replace(",", "")) if total else 0
self_costs, total = costs("no")
inclusive, _ = costs("yes")
wrappers = sum(self_costs.get(f, 0) for f in ("malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"))
sampling = inclusive.get("sample", 0)
print("%-22s %4d handshakes  per handshake: %9d instructions, %5d in the wrappers (%.3f %%), %5d taking samples (%.3f %%)"
      % (label, n, total / n, wrappers / n, 100.0 * wrappers / total, sampling / n, 100.0 * sampling / total))
PY
}
[ -n "${1-}" ] && measure other "$d/hbone-other" no
measure off "$d/hbone" no
measure on "$d/hbone" yes
echo "command: scripts/bench-heap-sampler.sh${1:+ $1}    (callgrind files in $d)"
