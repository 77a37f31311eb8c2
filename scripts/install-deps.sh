#!/usr/bin/env bash
# Installs the system packages hbone builds and tests with (Debian 12). Skips what is installed.
set -euo pipefail
need=()
for p in libssl-dev libnghttp2-dev pkg-config openssl python3 python3-h2 python3-prometheus-client python3-venv iproute2 iptables curl procps util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
