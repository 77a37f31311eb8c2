# Writes the two demo node configs. Sourced by demo.sh and tests.  write_demo_config OUT PKI NODE SOCKS_IP
write_demo_config() {
    local out=$1 pki=$2 node=$3 socks_ip=$4
    cat > "$out" <<YAML
# The ${node} node of the two-node loopback demo (ztunnel LocalConfig keys + hbone settings).
workloads:
- uid: cluster-west//v1/Pod/payments/ledger-0
  name: ledger-0
  namespace: payments
  serviceAccount: ledger
  trustDomain: cluster.local
  workloadIps: ["127.0.0.20"]
  protocol: HBONE
  node: west
- uid: cluster-east//v1/Pod/payments/checkout-0
  name: checkout-0
  namespace: payments
  serviceAccount: checkout
  trustDomain: cluster.local
  workloadIps: ["127.0.0.10"]
  protocol: HBONE
  node: east
hbone:
  node: ${node}
  trustDomain: cluster.local
  rootCertificates: ${pki}/bundle-root.pem
  certificates:
    directory: ${pki}/certs-${node}
  listen:
    socks5: ${socks_ip}:15080
    admin: ${socks_ip}:15000
    metrics: ${socks_ip}:15020
    readiness: ${socks_ip}:15021
YAML
}
