#!/usr/bin/env bash
# Validates config/kubernetes against a current Kubernetes schema with kubernetes-validate (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
k8s=${K8S_VERSION:-1.33.0}
python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==1.33.1" 2>&1 | grep -v "^$" || true
files=(config/kubernetes/namespace.yaml config/kubernetes/serviceaccount.yaml config/kubernetes/configmap.yaml config/kubernetes/daemonset.yaml
       config/kubernetes/inpod/serviceaccount.yaml config/kubernetes/inpod/configmap.yaml config/kubernetes/inpod/daemonset.yaml)
# The ConfigMap's embedded config must also load in hbone itself (policies as mounted).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
swift build --product hbone >/dev/null
for variant in config/kubernetes config/kubernetes/inpod; do
    out="$tmp/$(basename "$variant")"
    python3 - "$variant" "$out" <<'PY'
import os, sys, yaml
cm = yaml.safe_load(open(sys.argv[1] + "/configmap.yaml"))
out = sys.argv[2]
os.makedirs(out + "/policies")
open(out + "/config.yaml", "w").write(cm["data"]["config.yaml"].replace("/etc/hbone/policies", out + "/policies"))
open(out + "/policies/policies.yaml", "w").write(cm["data"]["policies.yaml"])
PY
    # --config-only: the certificates, roots and addresses it names are the cluster node's.
    NODE_NAME=node-1 "$(swift build --show-bin-path)/hbone" validate --config-only --config "$out/config.yaml"
done
if python3 -m kubernetes_validate --strict -k "$k8s" "${files[@]}"; then
    echo "manifest check: ${#files[@]} passed, 0 failed (Kubernetes $k8s, strict; embedded config loads)"
else
    echo "manifest check: 0 passed, 1 failed"
    exit 1
fi
