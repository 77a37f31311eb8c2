#!/usr/bin/env bash
# Loads a config with N workloads (default 100,000; 1,000 of them local) through `hbone validate
# --config-only` and prints wall time and peak RSS next to a same-run baseline: parsing the same
# YAML with Python's yaml (libyaml) alone. The goal (issue 14): under 2 s and 150 MB at 100,000.
#   Benchmarks/large-config.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
swift build -c release --product hbone 2>&1 | tail -n 1
bin=$(swift build -c release --show-bin-path)/hbone
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir/big.yaml" "$n" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
with open(out, "w") as f:
    f.write("workloads:\n")
    for i in range(n):
        a, b = divmod(i, 250)
        f.write('- {uid: "c//Pod/ns%d/w%d", name: w%d, namespace: ns%d, serviceAccount: sa%d, workloadIps: ["10.%d.%d.%d"], protocol: HBONE, node: n%d}\n'
                % (i % 50, i, i, i % 50, i % 200, a // 250, a % 250, b + 1, i % 100))
    f.write("hbone: {node: n0, rootCertificates: /dev/null, certificates: {directory: /nonexistent}}\n")
PY
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1; }
read -r t m < <(measure "$bin" validate --config-only --config "$dir/big.yaml")
read -r bt bm < <(measure python3 -c "import sys, yaml; yaml.load(open(sys.argv[1]), Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))" "$dir/big.yaml")
echo "large config: $n workloads ($(du -h "$dir/big.yaml" | cut -f1)): hbone ${t}s, $((m / 1024)) MiB peak RSS; baseline (python yaml, libyaml) ${bt}s, $((bm / 1024)) MiB"
echo "ratio: time $(python3 -c "print(round($t / $bt, 2))")x, memory $(python3 -c "print(round($m / $bm, 2))")x   goal: < 2 s and < 150 MiB"
echo "command: Benchmarks/large-config.sh $n"
