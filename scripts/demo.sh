#!/usr/bin/env bash
# The two-instance loopback demo: two hbone nodes (east, west) under one shared root with one
# intermediate each; checkout (east) talks to ledger (west) through east's SOCKS5, HBONE between them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-deps.sh
echo "== building hbone (release)"
swift build -c release --product hbone 2>&1 | tail -n 3
bin=$(swift build -c release --show-bin-path)/hbone

demo=$root/.demo
rm -rf "$demo"
mkdir -p "$demo"
echo "== generating the demo PKI (one root; intermediates cluster-east and cluster-west)"
scripts/gen-test-pki.sh "$demo/pki" >/dev/null
source scripts/lib/demo-config.sh
write_demo_config "$demo/east.yaml" "$demo/pki" east 127.0.0.2
write_demo_config "$demo/west.yaml" "$demo/pki" west 127.0.0.3

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() { # host port
    for _ in $(seq 1 100); do
        python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect((sys.argv[1], int(sys.argv[2])))" "$1" "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1:$2" >&2
    return 1
}

echo "== starting the ledger echo app on 127.0.0.20:8080 (behind west)"
python3 scripts/lib/echo_server.py 127.0.0.20 8080 & pids+=($!)
echo "== starting hbone west (inbound 127.0.0.20:15008) and east (SOCKS5 127.0.0.2:15080)"
"$bin" proxy --config "$demo/west.yaml" --workers 2 2> "$demo/west.log" & pids+=($!)
"$bin" proxy --config "$demo/east.yaml" --workers 2 2> "$demo/east.log" & pids+=($!)
wait_port 127.0.0.20 8080
wait_port 127.0.0.20 15008
wait_port 127.0.0.2 15080

echo "== checkout (127.0.0.10) -> east SOCKS5 -> HBONE -> west -> ledger (127.0.0.20:8080)"
status=0
python3 scripts/lib/socks_client.py --socks 127.0.0.2:15080 --source 127.0.0.10 --dest 127.0.0.20:8080 \
    --message "hello ledger, this is checkout" || status=$?
sleep 0.3
echo "== identities each side saw (access logs)"
east_saw=$(grep -h "connection complete" "$demo/east.log" | grep -o 'dst.identity=[^ ]*' | head -n 1)
west_saw=$(grep -h "connection complete" "$demo/west.log" | grep -o 'src.identity=[^ ]*' | head -n 1)
echo "east (client side) saw the server as: ${east_saw#dst.identity=}"
echo "west (server side) saw the client as: ${west_saw#src.identity=}"
if [ $status -eq 0 ] && [ "${west_saw#src.identity=}" = "spiffe://cluster.local/ns/payments/sa/checkout" ] \
    && [ "${east_saw#dst.identity=}" = "spiffe://cluster.local/ns/payments/sa/ledger" ]; then
    echo "== demo OK: bytes came back intact over mTLS + HTTP/2 CONNECT"
else
    echo "== demo FAILED (logs: $demo/east.log, $demo/west.log)"
    tail -n 20 "$demo/east.log" "$demo/west.log" >&2 || true
    exit 1
fi
