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

# A node configured only by a control plane: no workloads in the file; workloads, services and
# policies from istiod's xDS, SVIDs from its CA.  write_control_plane_config OUT PKI NODE SOCKS_IP ISTIOD TOKEN
write_control_plane_config() {
    local out=$1 pki=$2 node=$3 socks_ip=$4 istiod=$5 token=$6
    cat > "$out" <<YAML
# The ${node} node, configured and certified by istiod (Delta xDS + the Istio CA).
hbone:
  node: ${node}
  trustDomain: cluster.local
  rootCertificates: ${pki}/bundle-root.pem
  certificates:
    istioCA: true
  xds:
    address: ${istiod}
    rootCertificate: ${pki}/bundle-root.pem
    authToken: ${token}
  ca:
    address: ${istiod}
    rootCertificate: ${pki}/bundle-root.pem
  listen:
    socks5: ${socks_ip}:15080
    admin: ${socks_ip}:15000
    metrics: ${socks_ip}:15020
    readiness: ${socks_ip}:15021
YAML
}

# The demo mesh as istiod would publish it: checkout on east, ledger on west; each node's token.
write_control_plane_state() {
    cat > "$1" <<'JSON'
{"tokens": {"token-east": "east", "token-west": "west"},
 "pushes": [{"type": "address", "resources": [
   {"name": "cluster-east//v1/Pod/payments/checkout-0", "address": {"workload": {"uid": "cluster-east//v1/Pod/payments/checkout-0",
    "name": "checkout-0", "namespace": "payments", "serviceAccount": "checkout", "trustDomain": "cluster.local",
    "addresses": ["127.0.0.10"], "tunnelProtocol": "HBONE", "node": "east", "clusterId": "cluster-east"}}},
   {"name": "cluster-west//v1/Pod/payments/ledger-0", "address": {"workload": {"uid": "cluster-west//v1/Pod/payments/ledger-0",
    "name": "ledger-0", "namespace": "payments", "serviceAccount": "ledger", "trustDomain": "cluster.local",
    "addresses": ["127.0.0.20"], "tunnelProtocol": "HBONE", "node": "west", "clusterId": "cluster-west"}}}]}]}
JSON
}
