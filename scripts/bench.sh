#!/usr/bin/env bash
# Runs the benchmark suite against release builds, each figure beside a baseline from the same run.
#   scripts/bench.sh [all|handshake|throughput|latency|authz|datapath|micro]... [--peer go|none|HOST:PORT] [--peer-pid PID]
#   HBONE_UNDER_TEST=/other/build/hbone scripts/bench.sh ...   (the same harness against another proxy build)
# --peer go (the default when ../shared/baselines/go-hbone exists; HBONE_GO_BASELINE names another
# copy) builds the independent Go HBONE server and client and measures them with the same harness
# in the same run: handshakes against its server, latency and new connections through a Go
# two-proxy chain. --peer HOST:PORT measures handshakes against any other HBONE server already
# running there (--peer-pid PID adds its CPU per handshake).
# Writes bench-results/<UTC>.{txt,json,md,svg} (kept out of git). `datapath` (in `all`) runs the
# round-trip micro-benchmarks of the ordo-one package in Benchmarks/Micro for exact malloc counts;
# `micro` (all of that package) is not part of `all`.
set -euo pipefail
cd "$(dirname "$0")/.."
go_src=${HBONE_GO_BASELINE:-$(cd .. && pwd)/shared/baselines/go-hbone}
peer=none; [ -x "$go_src/build.sh" ] && peer=go
peer_pid=
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --peer) peer=${2:?--peer go|none|HOST:PORT}; shift 2 ;;
        --peer-pid) peer_pid=${2:?--peer-pid PID}; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
[ $# -eq 0 ] && set -- all
want() { for a in $selected; do { [ "$a" = all ] && [ "$1" != micro ]; } && return 0; [ "$a" = "$1" ] && return 0; done; return 1; }
selected="$*"
# The proxies run as shipped: no environment. HBONE_BENCH_GLIBC_TUNABLES=... measures them with glibc tunables.
tunables=${HBONE_BENCH_GLIBC_TUNABLES-}
# HBONE_BENCH_PROXY_CORES=N: each proxy of a chain gets N cores: hbone --workers N, every Go peer
# process GOMAXPROCS=N (how the chains compare when cores are scarce). Default: 2 workers, Go as it starts.
cores=${HBONE_BENCH_PROXY_CORES-}
chain_workers=${cores:-2}
source scripts/lib/release-build.sh
release_build quiet
# HBONE_UNDER_TEST=/path/to/hbone measures another build of the proxy with this harness (A/B runs).
hbone=${HBONE_UNDER_TEST:-$bin/hbone}
d=$(mktemp -d /tmp/hbone-bench.XXXXXX)
mkdir -p bench-results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench-results/$stamp
json=$d/figures.jsonl
: > "$json"
pids=()
ns=
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
    rm -rf "$d"
}
trap cleanup EXIT
scripts/gen-test-pki.sh "$d/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$d/east.yaml" "$d/pki" east 127.0.0.2
write_demo_config "$d/west.yaml" "$d/pki" west 127.0.0.3
exec > >(tee "$out.txt") 2>&1
echo "# hbone benchmarks $(date -u +%FT%TZ) on $(nproc) cores, $(openssl version | cut -d' ' -f1-2), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo "# proxies: ${tunables:+GLIBC_TUNABLES=$tunables, }no environment (as shipped); proxy binary $hbone${cores:+; $cores core(s) per proxy: --workers $cores, Go GOMAXPROCS=$cores}"
client="--cert-dir $d/pki/certs-east/payments/checkout --ca $d/pki/bundle-root.pem --source 127.0.0.10 --json $json"
server_id=spiffe://cluster.local/ns/payments/sa/ledger
# Each starter takes an optional last argument: a command prefix that runs it elsewhere (the
# capture block's `ip netns exec NS`).
proxy() { ${3-} env ${tunables:+GLIBC_TUNABLES=$tunables} "$hbone" proxy --config "$d/$1.yaml" --workers "$2" --log-level error 2>/dev/null & pids+=($!); }
# The last figure's value whose name contains $1.
figure() { python3 -c 'import json,sys; print([f for f in map(json.loads, open(sys.argv[1])) if sys.argv[2] in f["name"]][-1]["value"])' "$json" "$1"; }
up() { ${3-} bash -c 'for _ in $(seq 100); do (exec 3<>"/dev/tcp/$0/$1") 2>/dev/null && exit 0; sleep 0.1; done; echo "nothing listens on $0:$1" >&2; exit 1' "$1" "$2"; }
start_go_server() {
    ${1-} env ${cores:+GOMAXPROCS=$cores} "$go_bin/hboneserver" -listen 127.0.0.31:15008 -cert "$d/pki/certs-west/payments/ledger/cert-chain.pem" \
        -key "$d/pki/certs-west/payments/ledger/key.pem" -ca "$d/pki/bundle-root.pem" >/dev/null 2>&1 & pids+=($!)
}
# The Go two-proxy chain's entry to the echo server: hboneclient (east's SVID) -> Go server.
start_go_client() {
    ${1-} env ${cores:+GOMAXPROCS=$cores} "$go_bin/hboneclient" -mode listen -listen 127.0.0.32:9100 -server 127.0.0.31:15008 -dst 127.0.0.20:9002 \
        -cert "$d/pki/certs-east/payments/checkout/cert-chain.pem" -key "$d/pki/certs-east/payments/checkout/key.pem" \
        -ca "$d/pki/bundle-root.pem" >/dev/null 2>&1 & pids+=($!)
}
# The Go peer: its server holds the same server SVID as west; its client (an outbound proxy that
# turns each accepted connection into a CONNECT stream) holds east's client SVID.
if [ "$peer" = go ]; then
    go_bin=$("$go_src/build.sh" "$PWD/.build/go-hbone" | tail -n 1)
    start_go_server; go_server=$!
    up 127.0.0.31 15008
    echo "# peer: Go HBONE baseline ($go_src), server 127.0.0.31:15008"
fi

if want handshake; then
    echo "## full mTLS handshakes, server with one worker"
    echo "### baseline: openssl s_server -Verify, same certificates, same harness"
    openssl s_server -accept 127.0.0.30:4433 -cert "$d/pki/certs-west/payments/ledger/cert-chain.pem" \
        -cert_chain "$d/pki/west/ca-cert.pem" -key "$d/pki/certs-west/payments/ledger/key.pem" -CAfile "$d/pki/bundle-root.pem" -Verify 3 -tls1_3 \
        -alpn h2 -no_ticket -quiet >/dev/null 2>&1 & pids+=($!); spid=$!
    up 127.0.0.30 4433
    "$bin/hbone-bench" handshake --target 127.0.0.30:4433 $client --expect-id $server_id --concurrency 2 --duration 5 --server-pid $spid \
        --allow-no-alpn --label "openssl s_server"
    kill -9 $spid; wait $spid 2>/dev/null || true
    base="openssl s_server -Verify=$(figure 'openssl s_server: handshakes per server-core-second')"
    python3 scripts/lib/echo_server.py 127.0.0.20 9001 & pids+=($!); epid=$!
    base_connect=
    if [ "$peer" != none ]; then
        if [ "$peer" = go ]; then target=127.0.0.31:15008; label="Go HBONE server"; ppid=$go_server
        else target=$peer; label="peer $peer"; ppid=$peer_pid; fi
        echo "### $label ($target), same harness"
        "$bin/hbone-bench" handshake --target "$target" $client --expect-id $server_id --concurrency 2 --duration 5 \
            ${ppid:+--server-pid $ppid} --label "$label"
        [ -n "$ppid" ] && base="$label=$(figure "$label: handshakes per server-core-second")"
        "$bin/hbone-bench" handshake --target "$target" $client --expect-id $server_id --concurrency 2 --duration 5 \
            ${ppid:+--server-pid $ppid} --connect --authority 127.0.0.20:9001 --label "$label"
        [ -n "$ppid" ] && base_connect="$label=$(figure "$label: handshake+CONNECTs per server-core-second")"
    fi
    echo "### hbone inbound (127.0.0.20:15008)"
    proxy west 1; wpid=$!
    up 127.0.0.20 15008
    "$bin/hbone-bench" handshake --target 127.0.0.20:15008 $client --expect-id $server_id --concurrency 2 --duration 5 --server-pid $wpid \
        --server-workers 1 --label hbone --baseline "$base"
    echo "### hbone inbound, a new tunnel on each new connection (--connect: preface, CONNECT, 1-byte echo)"
    "$bin/hbone-bench" handshake --target 127.0.0.20:15008 $client --expect-id $server_id --concurrency 2 --duration 5 --server-pid $wpid \
        --connect --authority 127.0.0.20:9001 --label hbone ${base_connect:+--baseline "$base_connect"}
    kill -9 $wpid $epid; wait $wpid $epid 2>/dev/null || true
fi
if want throughput || want latency; then
    proxy west "$chain_workers"; w=$!
    proxy east "$chain_workers"; e=$!
    up 127.0.0.2 15080; up 127.0.0.20 15008
fi
if want throughput; then
    echo "## bulk transfer app -> east -> west -> app (1 and 8 streams, upload and download) vs direct TCP"
    "$bin/hbone-bench" throughput --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9000 --mib 1024 --runs 3 \
        --pids $e --pid-names east --pids $w --pid-names west --json "$json"
fi
if want latency; then
    echo "## latency, new connections over a warm pool, memory per idle tunnel and HBONE connection"
    python3 scripts/lib/echo_server.py 127.0.0.20 9001 & pids+=($!)
    up 127.0.0.20 9001
    chain="--socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9001 --json $json"
    peer_chain=
    if [ "$peer" = go ]; then
        start_go_client; go_client=$!
        up 127.0.0.32 9100
        peer_chain="--peer 127.0.0.32:9100 --peer-name Go-chain"
    fi
    # The floor: two relays that do no work (plain TCP, the same epoll loops and syscalls per hop,
    # no TLS, HTTP/2 or policy) in front of the same echo server.
    relays() {
        $1 "$bin/hbone-bench" relay --listen 127.0.0.41:9201 --to 127.0.0.20:9002 >/dev/null & pids+=($!); relay2=$!
        $1 "$bin/hbone-bench" relay --listen 127.0.0.40:9200 --to 127.0.0.41:9201 >/dev/null & pids+=($!); relay1=$!
        up 127.0.0.40 9200 "$1"
    }
    relays ""
    reference="--reference 127.0.0.40:9200 --reference-name relay-chain"
    "$bin/hbone-bench" latency --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9002 --serve --json "$json" --count 5000 \
        $peer_chain $reference
    "$bin/hbone-bench" connections --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9002 --serve --json "$json" \
        --duration 3 --concurrency 16 --pids $e --pids $w $peer_chain ${go_client:+--peer-pids $go_client --peer-pids $go_server} \
        $reference --reference-pids $relay1 --reference-pids $relay2
    "$bin/hbone-bench" idle $chain --tunnels 1000 --connections 200 --hbone-target 127.0.0.20:15008 \
        --cert-dir "$d/pki/certs-east/payments/checkout" --ca "$d/pki/bundle-root.pem" \
        --expect-id $server_id --client-pid $e --server-pid $w \
        --client-metrics 127.0.0.2:15020 --server-metrics 127.0.0.3:15020
    # New connections again, entering our chain as applications do in a mesh: a REDIRECT rule (as
    # istio-cni installs) hands each connection from 127.0.0.11 to east's outbound capture, with no
    # SOCKS5 exchange, like the Go chain's plain listener. Both chains run in a private network
    # namespace (its own loopback, with the NAT rule), which needs root and iptables.
    if [ "$(id -u)" = 0 ] && command -v iptables >/dev/null 2>&1 && ip netns add "hbone-bench-$$" 2>/dev/null; then
        ns=hbone-bench-$$
        in_ns="ip netns exec $ns"
        ip -n "$ns" link set lo up
        $in_ns iptables -w -t nat -A OUTPUT -p tcp -s 127.0.0.11 -d 127.0.0.20 --dport 9002 -j REDIRECT --to-ports 15001
        for node in east west; do
            python3 - "$d/$node.yaml" "$d/$node-capture.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
# A second checkout pod (same identity) whose traffic the rule captures, and east's capture listener.
text = text.replace("hbone:\n", """- uid: cluster-east//v1/Pod/payments/checkout-1
  name: checkout-1
  namespace: payments
  serviceAccount: checkout
  trustDomain: cluster.local
  workloadIps: ["127.0.0.11"]
  protocol: HBONE
  node: east
hbone:
""", 1).replace("    socks5: 127.0.0.2:15080\n", "    socks5: 127.0.0.2:15080\n    outboundCapture: 127.0.0.1:15001\n")
open(sys.argv[2], "w").write(text)
PY
        done
        proxy west-capture "$chain_workers" "$in_ns"; cw=$!
        proxy east-capture "$chain_workers" "$in_ns"; ce=$!
        up 127.0.0.1 15001 "$in_ns"; up 127.0.0.20 15008 "$in_ns"
        ns_peer=
        if [ "$peer" = go ]; then
            start_go_server "$in_ns"; ngs=$!
            start_go_client "$in_ns"; ngc=$!
            up 127.0.0.32 9100 "$in_ns"
            ns_peer="--peer 127.0.0.32:9100 --peer-name Go-chain --peer-pids $ngc --peer-pids $ngs"
        fi
        relays "$in_ns"
        $in_ns "$bin/hbone-bench" connections --socks 127.0.0.2:15080 --captured-from 127.0.0.11 --source 127.0.0.10 \
            --dest 127.0.0.20:9002 --serve --json "$json" --duration 3 --concurrency 16 --pids $ce --pids $cw $ns_peer \
            $reference --reference-pids $relay1 --reference-pids $relay2
    else
        echo "(new connections through the outbound capture: skipped, it needs root and iptables for a private network namespace)"
    fi
fi
if want authz; then
    echo "## authorization decision"
    "$bin/hbone-bench" authz --json "$json"
fi
if want datapath; then
    echo "## data path: mallocs and time per 1 KiB round trip over TLS (ordo-one, exact malloc counts)"
    micro="swift package --package-path Benchmarks/Micro --disable-sandbox benchmark --no-progress --format markdown"
    echo "command: $micro --filter 'H2 round trip.*'"
    $micro --filter 'H2 round trip.*' > "$d/micro.md" 2>&1 || { tail -n 20 "$d/micro.md"; exit 1; }
    # The p50 of each benchmark's metrics, as figures beside the same run's baselines.
    python3 - "$d/micro.md" "$json" "$micro --filter 'H2 round trip.*'" <<'PY'
import json, re, sys
text, out, command = open(sys.argv[1]).read(), open(sys.argv[2], "a"), sys.argv[3]
p50 = {}
for block in re.split(r"^### ", text, flags=re.M)[1:]:
    name = block.splitlines()[0].strip()
    # The harness picks each row's unit by magnitude (ns, μs, ms; K for thousands of mallocs):
    # figures are kept in ns and single mallocs.
    scale = {"ns": 1, "μs": 1e3, "us": 1e3, "ms": 1e6, "K": 1e3, "M": 1e6}
    for row in re.findall(r"^\| (Malloc \(total\)|Time \(wall clock\))(?: \((ns|μs|us|ms|K|M)\))? \*? *\|([^|]+)\|([^|]+)\|([^|]+)\|", block, flags=re.M):
        p50[(name, row[0].split()[0])] = float(row[4].strip()) * scale.get(row[1], 1)
tls, plain = "H2 round trip: 1 KiB DATA each way, HTTP/2 over TLS 1.3", "H2 round trip: 1 KiB DATA each way, HTTP/2 only"
def fig(name, value, unit, base=None, target=None):
    f = {"benchmark": "datapath", "name": name, "value": value, "unit": unit, "higherIsBetter": False, "command": command}
    if base: f.update(baselineName=base[0], baseline=base[1], ratio=value / base[1] if base[1] else None)
    if target: f.update(target=target[0], met=target[1])
    out.write(json.dumps(f) + "\n")
    print(f"{name}: {value:g} {unit}" + (f" (baseline {base[0]}: {base[1]:g})" if base else "") + (f"  goal {target[0]}: {'met' if target[1] else 'NOT met'}" if target else ""))
m = p50.get((tls, "Malloc"))
if m is None: sys.exit("no TLS round-trip figure in the micro-benchmark output")
fig("mallocs per 1 KiB round trip over TLS 1.3", m, "mallocs", ("HTTP/2 only", p50.get((plain, "Malloc"), 0)), ("≤ 4", m <= 4))
fig("1 KiB round trip over TLS 1.3 (in memory)", p50[(tls, "Time")], "ns", ("HTTP/2 only", p50.get((plain, "Time"), 0)))
PY
fi
if want micro; then
    echo "## micro-benchmarks (ordo-one/benchmark, Benchmarks/Micro)"
    echo "command: swift package --package-path Benchmarks/Micro --disable-sandbox benchmark --format markdown"
    swift package --package-path Benchmarks/Micro --disable-sandbox benchmark --no-progress --format markdown
fi
python3 scripts/lib/bench_report.py "$json" "$out" --title "hbone benchmarks $stamp, $(nproc) cores, $(openssl version | cut -d' ' -f1-2)"
echo "written: $out.txt $out.json $out.md $out.svg"
