#!/usr/bin/env bash
# Installs (or with --remove, removes) the iptables rules that send workload traffic through hbone.
# Run it in the node's network namespace (a node agent or init container does). Idempotent.
#
#   scripts/capture.sh [--remove] [--mark N] [--uid UID] [--outbound-port 15001] [--inbound-port 15008]
#                      [--plaintext-port 15006] [--workload-cidr CIDR ...]
#
# - Outbound: locally originated TCP (workloads) → REDIRECT to the outbound capture port, except
#   loopback destinations and the proxy's own connections (socket mark --mark, or --uid).
# - Inbound: TCP arriving for a workload CIDR → REDIRECT to the plaintext port, except the HBONE
#   port (hbone listens on workload IPs:15008 itself).
set -euo pipefail
mark=1337 uid="" out=15001 inbound=15008 plain=15006 remove=0 cidrs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --remove) remove=1 ;;
        --mark) mark=$2; shift ;;
        --uid) uid=$2; shift ;;
        --outbound-port) out=$2; shift ;;
        --inbound-port) inbound=$2; shift ;;
        --plaintext-port) plain=$2; shift ;;
        --workload-cidr) cidrs+=("$2"); shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "capture.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
ipt() { iptables -w -t nat "$@"; }

uninstall() {
    ipt -D OUTPUT -p tcp -j HBONE_OUTPUT 2>/dev/null || true
    ipt -D PREROUTING -p tcp -j HBONE_PREROUTING 2>/dev/null || true
    for c in HBONE_OUTPUT HBONE_PREROUTING; do
        ipt -F "$c" 2>/dev/null || true
        ipt -X "$c" 2>/dev/null || true
    done
}

uninstall
[ "$remove" -eq 1 ] && { echo "hbone capture rules removed"; exit 0; }

ipt -N HBONE_OUTPUT
ipt -A HBONE_OUTPUT -m mark --mark "$mark" -j RETURN          # the proxy's own upstream traffic
[ -n "$uid" ] && ipt -A HBONE_OUTPUT -m owner --uid-owner "$uid" -j RETURN
ipt -A HBONE_OUTPUT -d 127.0.0.0/8 -j RETURN
ipt -A HBONE_OUTPUT -p tcp -j REDIRECT --to-ports "$out"
ipt -A OUTPUT -p tcp -j HBONE_OUTPUT

ipt -N HBONE_PREROUTING
ipt -A HBONE_PREROUTING -p tcp --dport "$inbound" -j RETURN
for c in "${cidrs[@]}"; do
    ipt -A HBONE_PREROUTING -p tcp -d "$c" -j REDIRECT --to-ports "$plain"
done
ipt -A PREROUTING -p tcp -j HBONE_PREROUTING
echo "hbone capture rules installed (outbound → $out, inbound plaintext → $plain, proxy mark $mark)"
