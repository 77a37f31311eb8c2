#!/usr/bin/env bash
# Loads a config with N workloads (default 100,000; 1,000 of them local) three ways and prints
# wall time and peak RSS next to a same-run baseline (parsing the same YAML with Python's yaml on
# libyaml alone):
#   1. `hbone validate --config-only` (the file alone),
#   2. `hbone validate` (also issues the 1,000 local workloads' SVIDs from a test cacerts and
#      builds the proxy's tables, as start-up does),
#   3. `hbone proxy` from exec until /healthz/ready answers 200 (peak RSS from /proc VmHWM).
# The goal (issue 14): under 2 s and 150 MiB at 100,000.
#   Benchmarks/large-config.sh [N]
#   HBONE_UNDER_TEST=/path/to/other/hbone Benchmarks/large-config.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
# HBONE_UNDER_TEST: another build's binary (an A/B against an older commit), as for scripts/bench.sh.
if [ -n "${HBONE_UNDER_TEST:-}" ]; then
    bin=$HBONE_UNDER_TEST
else
    swift build -c release --product hbone 2>&1 | tail -n 1
    bin=$(swift build -c release --show-bin-path)/hbone
fi
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
scripts/gen-test-pki.sh "$dir/pki" >/dev/null 2>&1
python3 - "$dir" "$n" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
body = ["workloads:\n"]
for i in range(n):
    a, b = divmod(i, 250)
    body.append('- {uid: "c//Pod/ns%d/w%d", name: w%d, namespace: ns%d, serviceAccount: sa%d, workloadIps: ["10.%d.%d.%d"], protocol: HBONE, node: n%d}\n'
                % (i % 50, i, i, i % 50, i % 200, a // 250, a % 250, b + 1, i % 100))
body = "".join(body)
with open(out + "/big.yaml", "w") as f:
    f.write(body + "hbone: {node: n0, rootCertificates: /dev/null, certificates: {directory: /nonexistent}}\n")
# 127.0.0.77 and ports no test uses: the proxy really binds them.
listen = ", ".join('%s: "127.0.0.77:%d"' % kv for kv in [("inbound", 15008), ("inboundPlaintext", 15006),
         ("socks5", 15080), ("admin", 15000), ("metrics", 15020), ("readiness", 15021)])
with open(out + "/full.yaml", "w") as f:
    f.write(body + "hbone: {node: n0, rootCertificates: %s/pki/root/root-cert.pem, certificates: {ca: %s/pki/east}, listen: {%s}}\n"
            % (out, out, listen))
PY
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1; }
read -r t m < <(measure "$bin" validate --config-only --config "$dir/big.yaml")
read -r ft fm < <(measure "$bin" validate --config "$dir/full.yaml")
start=$(date +%s.%N)
"$bin" proxy --config "$dir/full.yaml" >"$dir/proxy.log" 2>&1 &
pid=$!
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.77:15021/healthz/ready', timeout=1)" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "the proxy exited:"; tail -n 5 "$dir/proxy.log"; exit 1; }
    sleep 0.02
done
pt=$(python3 -c "import time; print(round(time.time() - $start, 2))")
pm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
read -r bt bm < <(measure python3 -c "import sys, yaml; yaml.load(open(sys.argv[1]), Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))" "$dir/big.yaml")
echo "large config: $n workloads ($(du -h "$dir/big.yaml" | cut -f1)); baseline (python yaml, libyaml, parse only) ${bt}s, $((bm / 1024)) MiB"
ratio() { python3 -c "print(f'{$1 / $bt:.2f}x time, {$2 / $bm:.2f}x memory')"; }
echo "  validate --config-only: ${t}s, $((m / 1024)) MiB peak RSS ($(ratio "$t" "$m"))"
echo "  validate (SVIDs, tables): ${ft}s, $((fm / 1024)) MiB peak RSS ($(ratio "$ft" "$fm"))"
echo "  proxy start to ready:   ${pt}s, $((pm / 1024)) MiB peak RSS ($(ratio "$pt" "$pm"))"
echo "goal: < 2 s and < 150 MiB"
echo "command: Benchmarks/large-config.sh $n"
