#!/usr/bin/env bash
# The two-instance loopback demo: two hbone nodes (east, west) under one shared root with one
# intermediate each; checkout (east) talks to ledger (west) through east's SOCKS5, HBONE between them.
#   scripts/demo.sh                   nodes configured from files (SVIDs on disk)
#   scripts/demo.sh --control-plane   nodes configured only by a control plane: one stand-in istiod
#                                     per cluster (scripts/lib/fake_istiod.py, grpcio) serving Delta
#                                     xDS and the Istio CA, each signing with its cluster's intermediate
set -euo pipefail
mode=${1:-files}
case "$mode" in files|--control-plane) ;; *) echo "usage: scripts/demo.sh [--control-plane]" >&2; exit 2 ;; esac
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

if [ "$mode" = "--control-plane" ]; then
    echo "== preparing the test control plane's Python (grpcio, protobuf, cryptography)"
    py=$(scripts/lib/pyenv.sh)
    write_control_plane_state "$demo/istiod-state.json"
    for cluster in east west; do
        echo "token-$cluster" > "$demo/token-$cluster"
        "$py/bin/python" scripts/lib/fake_istiod.py --proto-dir "$py/proto" --state "$demo/istiod-state.json" \
            --serving-chain "$demo/pki/istiod/cert-chain.pem" --serving-key "$demo/pki/istiod/key.pem" \
            --ca "$demo/pki/$cluster" --foreign-ca "$demo/pki/other" > "$demo/istiod-$cluster.out" 2> "$demo/istiod-$cluster.log" & pids+=($!)
    done
    for cluster in east west; do
        for _ in $(seq 1 100); do [ -s "$demo/istiod-$cluster.out" ] && break; sleep 0.1; done
        port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc_port"])' "$demo/istiod-$cluster.out")
        echo "== istiod of cluster-$cluster (stand-in) on https://127.0.0.1:$port, signing with the cluster-$cluster intermediate"
        socks_ip=127.0.0.2; [ "$cluster" = west ] && socks_ip=127.0.0.3
        write_control_plane_config "$demo/$cluster.yaml" "$demo/pki" "$cluster" "$socks_ip" "https://127.0.0.1:$port" "$demo/token-$cluster"
    done
else
    write_demo_config "$demo/east.yaml" "$demo/pki" east 127.0.0.2
    write_demo_config "$demo/west.yaml" "$demo/pki" west 127.0.0.3
fi

echo "== starting the ledger echo app on 127.0.0.20:8080 (behind west)"
python3 scripts/lib/echo_server.py 127.0.0.20 8080 & pids+=($!)
echo "== starting hbone west (inbound 127.0.0.20:15008) and east (SOCKS5 127.0.0.2:15080)"
"$bin" proxy --config "$demo/west.yaml" --workers 2 2> "$demo/west.log" & pids+=($!)
"$bin" proxy --config "$demo/east.yaml" --workers 2 2> "$demo/east.log" & pids+=($!)
wait_port 127.0.0.20 8080
wait_port 127.0.0.20 15008
wait_port 127.0.0.2 15080
if [ "$mode" = "--control-plane" ]; then
    for admin in 127.0.0.2 127.0.0.3; do
        for _ in $(seq 1 100); do curl -sf "http://$admin:15021/healthz/ready" >/dev/null && break; sleep 0.1; done
    done
    echo "== what each node got from its istiod (/config_dump controlPlane)"
    for admin in 127.0.0.2 127.0.0.3; do
        curl -s "http://$admin:15000/config_dump" | python3 -c '
import json, sys
d = json.load(sys.stdin); cp = d["controlPlane"]
certs = {k: v["state"] + " until " + str(v["validUntil"]) for k, v in cp["ca"]["certificates"].items()}
print("  node %s: xDS synced=%s, workloads=%s, certificates=%s, issuer=%s" % (d["config"]["node"], cp["xds"]["synced"],
      sorted(w["name"] for w in d["workloads"]), certs, d["certificates"][0]["certChain"][1]["subject"] if d["certificates"] else "-"))'
    done
fi

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
