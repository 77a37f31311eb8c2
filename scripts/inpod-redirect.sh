#!/usr/bin/env bash
# In-pod redirection as istio-cni sets it up inside a pod's network namespace for ztunnel (and so
# for hbone in in-pod mode); run it inside the pod's namespace (ip netns exec POD ...). Tests and
# local setups only: in a cluster, istio-cni installs these rules.
#   inpod-redirect.sh [--mark 0x539] [--no-dns] [--remove]
# - nat OUTPUT: the app's outbound TCP (not loopback, not the proxy's own marked sockets) -> 15001
# - nat PREROUTING: inbound TCP to any port but 15008 (not marked) -> 15006 (plaintext inbound)
# - mangle: the proxy's marked sockets set connmark 0x111, replies restore it, and fwmark 0x111
#   routes to a local table, so connections the proxy makes from a client's address (transparent)
#   get their replies back.
# - DNS (istio-cni's ambient.dnsCapture, on by default): the app's UDP to port 53, and TCP to port 53
#   off loopback (not marked) -> 15053, the proxy's DNS inside the pod.
set -euo pipefail
mark=0x539
remove=0
dns=1
while [ $# -gt 0 ]; do
    case "$1" in
        --mark) mark=$2; shift 2 ;;
        --remove) remove=1; shift ;;
        --no-dns) dns=0; shift ;;
        *) echo "usage: inpod-redirect.sh [--mark 0x539] [--no-dns] [--remove]" >&2; exit 2 ;;
    esac
done
ipt() { iptables -w "$@"; }
clean() {
    for t in nat mangle; do
        ipt -t $t -D PREROUTING -j HBONE_PRERT 2>/dev/null || true
        ipt -t $t -D OUTPUT -j HBONE_OUTPUT 2>/dev/null || true
        ipt -t $t -F HBONE_PRERT 2>/dev/null || true
        ipt -t $t -X HBONE_PRERT 2>/dev/null || true
        ipt -t $t -F HBONE_OUTPUT 2>/dev/null || true
        ipt -t $t -X HBONE_OUTPUT 2>/dev/null || true
    done
    ip rule del fwmark 0x111/0xfff pref 32764 lookup 100 2>/dev/null || true
    ip route flush table 100 2>/dev/null || true
}
clean
[ $remove -eq 1 ] && exit 0
for t in nat mangle; do
    ipt -t $t -N HBONE_PRERT
    ipt -t $t -N HBONE_OUTPUT
    ipt -t $t -A PREROUTING -j HBONE_PRERT
    ipt -t $t -A OUTPUT -j HBONE_OUTPUT
done
ipt -t mangle -A HBONE_PRERT -m mark --mark "$mark/0xfff" -j CONNMARK --set-xmark 0x111/0xfff
ipt -t mangle -A HBONE_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
ipt -t nat -A HBONE_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark "$mark/0xfff" -j REDIRECT --to-ports 15006
ipt -t nat -A HBONE_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
if [ $dns -eq 1 ]; then
    ipt -t nat -A HBONE_OUTPUT -p udp --dport 53 -m mark ! --mark "$mark/0xfff" -j REDIRECT --to-ports 15053
    ipt -t nat -A HBONE_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark "$mark/0xfff" -j REDIRECT --to-ports 15053
fi
ipt -t nat -A HBONE_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
ipt -t nat -A HBONE_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark "$mark/0xfff" -j REDIRECT --to-ports 15001
ip rule add fwmark 0x111/0xfff pref 32764 lookup 100
ip route add local 0.0.0.0/0 dev lo table 100
