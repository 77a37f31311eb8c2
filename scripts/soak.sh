#!/usr/bin/env bash
# Soak: two release proxies on loopback under sustained churn, with SVIDs rotating and policies
# reloading underneath. Not part of CI (it runs for minutes).
#   scripts/soak.sh [SECONDS] [CONCURRENCY] [RATE]      defaults: 600 s, 10000 tunnels, 1000 new per second
# East issues its SVIDs from a cacerts directory with a 60 s TTL renewed at half-life (a rotation every
# 30 s on each proxy); west's policy files are rewritten every 10 s (same meaning, new content). 2 % of
# the tunnels go to a port west's policy denies and must be refused with SOCKS5 0x02; every other
# tunnel must echo intact twice. Prints failed tunnels, RSS and open fds of both proxies once the load
# is at full concurrency and at the end, and the p50/p99 of tunnel set-up; exits 1 when a goal fails.
# HBONE_SOAK_HEAP_PROFILE=1 runs both proxies with heap profiling active from the start and keeps a
# heap profile of each, taken with the "end" sample (go tool pprof -top FILE), in the logs directory.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
concurrency=${2:-10000}
rate=${3:-1000}
source scripts/lib/release-build.sh
release_build quiet
d=$(mktemp -d /tmp/hbone-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
scripts/gen-test-pki.sh "$d/pki" >/dev/null
net=127.0.90
mkdir -p "$d/policies"
write_config() {  # NODE SOCKS_IP
    cat > "$d/$1.yaml" <<YAML
workloads:
- {uid: west//ledger-0, name: ledger-0, namespace: payments, serviceAccount: ledger, workloadIps: ["$net.20"], protocol: HBONE, node: west}
- {uid: east//checkout-0, name: checkout-0, namespace: payments, serviceAccount: checkout, workloadIps: ["$net.10"], protocol: HBONE, node: east}
hbone:
  node: $1
  trustDomain: cluster.local
  rootCertificates: $d/pki/bundle-root.pem
  certificates:
    ca: $d/pki/$1
    ttl: 60s
    rotationGracePeriodRatio: 0.5
  authorizationPolicies: ["$d/policies"]
  timeouts: {idle: 600s}
  listen: {socks5: $2:15080, admin: $2:15000, metrics: $2:15020, readiness: $2:15021}
YAML
}
write_policy() {  # GENERATION: the same decision, written anew
    cat > "$d/policies/deny-port.yaml.tmp" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-port-9999, namespace: payments, labels: {generation: "g$1"}}
spec:
  action: DENY
  rules: [{to: [{operation: {ports: ["9999"]}}]}]
YAML
    mv "$d/policies/deny-port.yaml.tmp" "$d/policies/deny-port.yaml"
}
write_config east $net.2
write_config west $net.3
write_policy 0
# The proxies run as the DaemonSet ships them (config/README.md).
for node in west east; do
    "$bin/hbone" proxy --config "$d/$node.yaml" --log-level warn > "$d/$node.log" 2>&1 &
    pids+=($!)
done
west_pid=${pids[0]}; east_pid=${pids[1]}
up() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1:$2" >&2; exit 1; }
up $net.20 15008; up $net.2 15080
heap_profiles=${HBONE_SOAK_HEAP_PROFILE:-}
if [ -n "$heap_profiles" ]; then
    for ip in $net.2 $net.3; do curl -sf "http://$ip:15000/debug/pprof/heap/profiling?activate=true" | sed "s/^/$ip /"; done
fi
sample() {  # LABEL
    for name in east west; do
        pid=$([ $name = east ] && echo $east_pid || echo $west_pid)
        rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
        fds=$(ls /proc/$pid/fd | wc -l)
        echo "$1 $name rss_kib=$rss fds=$fds"
    done
}
( i=1; while sleep 10; do write_policy $i; i=$((i + 1)); done ) & pids+=($!)
# Every 5 s: each proxy's certificate expiry (it moves at every renewal) and west's config version.
( while sleep 5; do
    for ip in $net.2 $net.3; do curl -s "http://$ip:15020/metrics" | grep '^hbone_certificate_expiration' | sed "s/^/$ip /"; done
    curl -s "http://$net.3:15000/config_dump" | /usr/bin/python3 -c 'import json,sys; print("configVersion", json.load(sys.stdin)["configVersion"])' 2>/dev/null
  done > "$d/observed.txt" ) & pids+=($!)
echo "== soak: $concurrency tunnels, $rate new per second, ${seconds}s; SVIDs renewed every 30 s, policies rewritten every 10 s"
echo "   command: scripts/soak.sh $seconds $concurrency $rate   (logs in $d)"
# The echo app and the tunnel clients are two processes: each holds one end of every tunnel, so
# each stays under the fd limit the proxies have too.
"$bin/hbone-bench" soak --role echo --socks $net.2:15080 --source $net.10 --dest $net.20:8080 --denied-port 9999 \
    2> "$d/echo.log" & pids+=($!)
up $net.20 8080
"$bin/hbone-bench" soak --role client --socks $net.2:15080 --source $net.10 --dest $net.20:8080 --denied-port 9999 \
    --concurrency "$concurrency" --rate "$rate" --seconds "$seconds" > "$d/result.json" 2> "$d/progress.log" & driver=$!
pids+=($driver)
# Both samples under full load: "start" 30 s in (ramped up, first rotation done), "end" 5 s before the
# load stops; "after" once every tunnel closed (fds back down: nothing leaked).
t0=$(date +%s)
sleep 30
sample start | tee "$d/start.txt"
sleep $(( seconds - 5 - ($(date +%s) - t0) > 0 ? seconds - 5 - ($(date +%s) - t0) : 0 ))
sample end | tee "$d/end.txt"
if [ -n "$heap_profiles" ]; then
    for name in east west; do
        ip=$([ $name = east ] && echo $net.2 || echo $net.3)
        curl -sf -m 60 -o "$d/heap-$name.pb" "http://$ip:15000/debug/pprof/heap"
        /usr/bin/python3 scripts/lib/pprof_check.py "$d/heap-$name.pb" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
a_objects, a_bytes, objects, live = r["totals"]
print("%s heap profile: %d MiB in use in %d objects (estimated), %d MiB allocated since activation in %d, consistent %s"
      % (sys.argv[1], live >> 20, objects, a_bytes >> 20, a_objects, r["values_consistent"] and r["locations_defined"]))' "$name"
    done
fi
wait $driver
sleep 2
sample after | tee "$d/after.txt"
cat "$d/result.json"
rotations=$(grep '^127' "$d/observed.txt" | sort -u | wc -l)
versions=$(grep '^configVersion' "$d/observed.txt" | sort -u | wc -l)
echo "distinct SVID expiry times seen (both proxies): $rotations; distinct west config versions seen: $versions"
/usr/bin/python3 - "$d" <<'PY'
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/result.json"))
def read(label):
    out = {}
    for line in open("%s/%s.txt" % (d, label)):
        _, name, rss, fds = line.split()
        out[name] = (int(rss.split("=")[1]), int(fds.split("=")[1]))
    return out
start, end = read("start"), read("end")
ok = r["failed"] == 0 and r["denied_but_not_refused"] == 0
after = read("after")
for name in ("east", "west"):
    (r0, f0), (r1, f1), (_, f2) = start[name], end[name], after[name]
    growth, fd_growth = (r1 - r0) / r0, (f1 - f0) / f0
    print("%s: under load RSS %d -> %d KiB (%+.1f %%), fds %d -> %d (%+.1f %%); fds once idle %d"
          % (name, r0, r1, growth * 100, f0, f1, fd_growth * 100, f2))
    ok = ok and growth <= 0.10 and fd_growth <= 0.10
print("tunnels ok=%d failed=%d denied=%d (as intended), set-up p50 %s ms, p99 %s ms" % (r["ok"], r["failed"], r["denied"], r["setup_ms_p50"], r["setup_ms_p99"]))
print("soak: " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
