#!/usr/bin/env bash
# What on-demand DNS costs a new connection: one proxy (--workers 1, release build) with two
# services in front of the same echo server, one whose endpoint is the echo server's address and
# one whose endpoint is known by hostname only (a ServiceEntry with `resolution: DNS`), answered by
# the stand-in resolver with a TTL of an hour, so every connection after the first is served from
# the loop's cache. The two paths take turns (`hbone-bench connections` through SOCKS5, 16 at a
# time); the medians of proxy CPU per new connection and of new connections per second, and their
# ratios, are printed.
#   scripts/bench-dns-endpoint.sh [ROUNDS]    (default 3 rounds of 3 s per path)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
source scripts/lib/release-build.sh
release_build
d=$(mktemp -d /tmp/hbone-dns-endpoint.XXXXXX)
scripts/gen-test-pki.sh "$d/pki" >/dev/null
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT

echo '{"echo.bench.test": {"A": ["127.0.0.20"], "ttl": 3600}}' > "$d/zone.json"
: > "$d/resolv.conf"   # no search list: the name is asked as it is
cat > "$d/east.yaml" <<YAML
workloads:
- {uid: east//checkout-0, name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["127.0.0.10"], protocol: HBONE, node: east}
- {uid: ext//by-address, name: by-address, namespace: bench, serviceAccount: echo, workloadIps: ["127.0.0.20"], protocol: TCP,
   services: {"bench/address.bench.test": {9002: 9002}}}
- {uid: ext//by-hostname, name: by-hostname, namespace: bench, serviceAccount: echo, hostname: echo.bench.test, protocol: TCP,
   services: {"bench/hostname.bench.test": {9002: 9002}}}
services:
- {name: address, namespace: bench, hostname: address.bench.test, vips: ["127.0.0.30"], ports: {9002: 9002}}
- {name: hostname, namespace: bench, hostname: hostname.bench.test, vips: ["127.0.0.31"], ports: {9002: 9002}}
hbone:
  node: east
  rootCertificates: $d/pki/bundle-root.pem
  certificates: {directory: $d/pki/certs-east}
  dns: {upstreams: ["127.0.0.53:5353"], resolvConf: $d/resolv.conf}
  listen: {socks5: "127.0.0.2:15080", admin: "127.0.0.2:15000", metrics: "127.0.0.2:15020", readiness: "127.0.0.2:15021"}
YAML
python3 scripts/lib/dns_tool.py upstream --listen 127.0.0.53:5353 --zone "$d/zone.json" --ready "$d/dns.ready" 2>/dev/null & pids+=($!)
# The endpoint, and the same echo on both VIPs for the harness's direct path (its baseline).
for ip in 127.0.0.20 127.0.0.30 127.0.0.31; do python3 scripts/lib/echo_server.py "$ip" 9002 2>/dev/null & pids+=($!); done
"$bin/hbone" proxy --config "$d/east.yaml" --workers 1 --log-level error 2>/dev/null & proxy=$!; pids+=($proxy)
for _ in $(seq 100); do [ -f "$d/dns.ready" ] && (exec 3<>/dev/tcp/127.0.0.2/15080) 2>/dev/null && break; sleep 0.1; done

: > "$d/figures.jsonl"
run() {
    "$bin/hbone-bench" connections --socks 127.0.0.2:15080 --source 127.0.0.10 --dest "$2:9002" --duration 3 --concurrency 16 \
        --pids "$proxy" --json "$d/$1.jsonl" | grep -E "proxy CPU per new connection|new connections/s" | sed "s/^/$1: /"
}
for r in $(seq "$rounds"); do
    run address 127.0.0.30
    run hostname 127.0.0.31
done
lookups=$(curl -s http://127.0.0.2:15020/metrics | grep '^istio_on_demand_dns_total' | awk '{s += $2} END {print s + 0}')
python3 - "$d" "$rounds" "$lookups" <<'PY'
import json, statistics, sys
d, rounds, lookups = sys.argv[1], sys.argv[2], sys.argv[3]
def values(path, text):
    return [f["value"] for f in map(json.loads, open("%s/%s.jsonl" % (d, path))) if text in f["name"]]
cpu = {p: statistics.median(values(p, "proxy CPU per new connection")) for p in ("address", "hostname")}
rate = {p: statistics.median(values(p, "new app connections/s")) for p in ("address", "hostname")}
print("median proxy CPU per new connection: address endpoint %.0f µs, hostname endpoint %.0f µs (%.2fx)"
      % (cpu["address"], cpu["hostname"], cpu["hostname"] / cpu["address"]))
print("median new connections/s: address endpoint %.0f, hostname endpoint %.0f (%.2fx)"
      % (rate["address"], rate["hostname"], rate["hostname"] / rate["address"]))
print("connections counted in istio_on_demand_dns_total: %s" % lookups)
PY
echo "command: scripts/bench-dns-endpoint.sh $rounds    (figures in $d)"
