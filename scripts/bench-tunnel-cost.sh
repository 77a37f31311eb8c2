#!/usr/bin/env bash
# What one proxied connection costs each proxy of a chain over a warm HBONE connection, counted
# exactly under callgrind (a timing on this shared machine cannot resolve a few hundred
# instructions): instructions, calls into the malloc family, and the call sites that allocate most.
# Both proxies run with one worker under callgrind; `hbone-bench connections` (SOCKS5 entry:
# connect, 1-byte echo, close; 16 at a time) drives them; the counters are zeroed after a warm-up
# and dumped after the measured run; the tunnels are counted from each proxy's own
# istio_tcp_connections_opened_total.
#   scripts/bench-tunnel-cost.sh [OTHER_HBONE] [SECONDS]   (OTHER_HBONE: another build, measured first)
# With --round-trips, the cost of carrying bytes instead: one tunnel echoing COUNT round trips of
# 1 byte and COUNT of 1 KiB one at a time (`hbone-bench latency`), reported per round trip.
#   scripts/bench-tunnel-cost.sh --round-trips [OTHER_HBONE] [COUNT]
set -euo pipefail
# What the mode measures: its warm-up load, its default amount, and the unit it reports per.
round_trips= warmup=2 default=8 unit=tunnel
if [ "${1-}" = --round-trips ]; then round_trips=1 warmup=200 default=3000 unit="round trip"; shift; fi
cd "$(dirname "$0")/.."
source scripts/lib/release-build.sh
release_build quiet
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
other=${1-}
seconds=${2-$default}
d=$(mktemp -d /tmp/hbone-tunnel-cost.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT
scripts/gen-test-pki.sh "$d/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$d/east.yaml" "$d/pki" east 127.0.0.2
write_demo_config "$d/west.yaml" "$d/pki" west 127.0.0.3
# valgrind 3.19 cannot read the DWARF 5 the toolchain writes: measure copies without it.
strip --strip-debug -o "$d/hbone" "$bin/hbone"
[ -n "$other" ] && strip --strip-debug -o "$d/hbone-other" "$other"
up() { for _ in $(seq 900); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1:$2" >&2; exit 1; }
# Tunnels a proxy has opened so far (its own counter, all series).
opened() {
    curl -sf -m 60 "http://$1:15020/metrics" | awk '/^istio_tcp_connections_opened_total/ { n += $NF } END { printf "%d\n", n }'
}
load() {
    if [ -n "$round_trips" ]; then
        "$bin/hbone-bench" latency --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9002 --serve \
            --count "$1" --blocks 1 >/dev/null
    else
        "$bin/hbone-bench" connections --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:9002 --serve \
            --duration "$1" --rounds 1 --concurrency 16 >/dev/null
    fi
}
measure() {  # LABEL BINARY
    local label=$1 binary=$2 east west
    valgrind --tool=callgrind --callgrind-out-file="$d/cg-$label-west.%p" "$binary" proxy --config "$d/west.yaml" --workers 1 --log-level error 2>/dev/null &
    west=$!; pids+=($west)
    valgrind --tool=callgrind --callgrind-out-file="$d/cg-$label-east.%p" "$binary" proxy --config "$d/east.yaml" --workers 1 --log-level error 2>/dev/null &
    east=$!; pids+=($east)
    up 127.0.0.20 15008; up 127.0.0.2 15080; up 127.0.0.3 15020; up 127.0.0.2 15020
    load "$warmup"    # the HBONE connection, the SVIDs' contexts, the first of everything
    local e0 w0 e1 w1
    e0=$(opened 127.0.0.2); w0=$(opened 127.0.0.3)
    callgrind_control -z "$east" >/dev/null 2>&1; callgrind_control -z "$west" >/dev/null 2>&1
    load "$seconds"
    callgrind_control -d "$east" >/dev/null 2>&1; callgrind_control -d "$west" >/dev/null 2>&1
    sleep 1
    e1=$(opened 127.0.0.2); w1=$(opened 127.0.0.3)
    kill "$east" "$west"; wait "$east" "$west" 2>/dev/null || true
    for side in east west; do
        local n; [ $side = east ] && n=$((e1 - e0)) || n=$((w1 - w0))
        [ -n "$round_trips" ] && n=$((2 * seconds))   # round trips: COUNT of each size
        python3 scripts/lib/callgrind_allocs.py "$label $side" "$n" "$(ls "$d"/cg-"$label"-$side.*.1 | head -1)" 12 "$unit"
    done
}
[ -n "$other" ] && measure other "$d/hbone-other"
measure this "$d/hbone"
echo "command: scripts/bench-tunnel-cost.sh${round_trips:+ --round-trips}${other:+ $other} $seconds    (callgrind files in $d)"
