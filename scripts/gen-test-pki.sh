#!/usr/bin/env bash
# Generates the test and demo PKI with the openssl CLI: one shared root, one intermediate per
# cluster (east, west), workload SVIDs, and an unrelated root for negative tests.
#   scripts/gen-test-pki.sh OUT_DIR
# Layout:
#   OUT/root/{root-cert.pem,root-key.pem}            the shared mesh root
#   OUT/<cluster>/{ca-cert.pem,ca-key.pem,root-cert.pem,cert-chain.pem}   a cacerts bundle
#   OUT/certs-<cluster>/<ns>/<sa>/{cert-chain.pem,key.pem,root-cert.pem}  SVIDs (leaf + intermediate)
#   OUT/other-root/...  and OUT/certs-other/...       a second, unrelated mesh (its own root)
set -euo pipefail
out=${1:?usage: gen-test-pki.sh OUT_DIR}
mkdir -p "$out"
cd "$out"
umask 077

td=cluster.local

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 16)"; }

make_root() { # dir cn
    mkdir -p "$1"
    eckey "$1/root-key.pem"
    openssl req -x509 -new -key "$1/root-key.pem" -sha256 -days 3650 -subj "/O=hbone-test/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$1/root-cert.pem"
}

make_intermediate() { # rootdir dir cluster
    local root=$1 dir=$2 cluster=$3
    mkdir -p "$dir"
    eckey "$dir/ca-key.pem"
    openssl req -new -key "$dir/ca-key.pem" -subj "/O=hbone-test/CN=$cluster intermediate" -out "$dir/ca.csr"
    cat > "$dir/ca.ext" <<EXT
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl x509 -req -in "$dir/ca.csr" -CA "$root/root-cert.pem" -CAkey "$root/root-key.pem" \
        -set_serial "$(serial)" -days 1825 -sha256 -extfile "$dir/ca.ext" -out "$dir/ca-cert.pem" 2>/dev/null
    cp "$root/root-cert.pem" "$dir/root-cert.pem"
    cat "$dir/ca-cert.pem" "$root/root-cert.pem" > "$dir/cert-chain.pem"
    rm -f "$dir/ca.csr" "$dir/ca.ext"
}

# issue_leaf CA_DIR OUT_DIR SPIFFE_ID [extra extension lines...]
# The default extensions are those of an Istio SVID; extra lines replace any key they name.
issue_leaf() {
    local ca=$1 dir=$2 id=$3
    shift 3
    mkdir -p "$dir"
    eckey "$dir/key.pem"
    openssl req -new -key "$dir/key.pem" -subj "/O=hbone-test" -out "$dir/leaf.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth,clientAuth"
        echo "subjectAltName=critical,URI:$id"
        echo "authorityKeyIdentifier=keyid"
    } > "$dir/leaf.ext"
    for line in "$@"; do
        key=${line%%=*}
        grep -v "^$key=" "$dir/leaf.ext" > "$dir/leaf.ext.new" || true
        mv "$dir/leaf.ext.new" "$dir/leaf.ext"
        [ "${line#*=}" = "" ] || echo "$line" >> "$dir/leaf.ext"
    done
    openssl x509 -req -in "$dir/leaf.csr" -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
        -set_serial "$(serial)" -days 2 -sha256 -extfile "$dir/leaf.ext" -out "$dir/leaf.pem" 2>/dev/null
    cat "$dir/leaf.pem" "$ca/ca-cert.pem" > "$dir/cert-chain.pem"
    cp "$ca/root-cert.pem" "$dir/root-cert.pem"
    rm -f "$dir/leaf.csr" "$dir/leaf.ext" "$dir/leaf.pem"
}

make_root root "hbone mesh root"
make_intermediate root east cluster-east
make_intermediate root west cluster-west
make_intermediate root west-next cluster-west-next   # a replacement intermediate (rotation tests)
# A second mesh root with its own intermediates, for root-rotation tests.
make_root root2 "hbone mesh root 2"
make_intermediate root2 east2 cluster-east2
make_intermediate root2 west2 cluster-west2
issue_leaf east certs-east/payments/checkout "spiffe://$td/ns/payments/sa/checkout"
issue_leaf west certs-west/payments/ledger "spiffe://$td/ns/payments/sa/ledger"
issue_leaf west certs-west/payments/audit "spiffe://$td/ns/payments/sa/audit"
issue_leaf east certs-east/shop/frontend "spiffe://$td/ns/shop/sa/frontend"
# West's east-west gateway (double HBONE tests).
issue_leaf west certs-gateway/istio-system/istio-eastwestgateway "spiffe://$td/ns/istio-system/sa/istio-eastwestgateway"
# The next SVID for ledger (same identity, new key and serial), for rotation tests.
issue_leaf west certs-west-next/payments/ledger "spiffe://$td/ns/payments/sa/ledger"

# istiod's serving certificate (DNS names and an IP, no SPIFFE ID), for the control-plane TLS tests.
issue_leaf east istiod "" "subjectAltName=critical,DNS:istiod.istio-system.svc,DNS:istiod.istio-system.svc.cluster.local,IP:127.0.0.1" \
    "extendedKeyUsage=serverAuth"

# An unrelated mesh: same trust domain name, different root. Must never be trusted by the above.
make_root other-root "unrelated root"
make_intermediate other-root other cluster-other
issue_leaf other certs-other/payments/checkout "spiffe://$td/ns/payments/sa/checkout"
issue_leaf other certs-other/payments/ledger "spiffe://$td/ns/payments/sa/ledger"

# Leaves with one defect each (named after it), all under the east intermediate.
bad=bad
issue_leaf east $bad/no-san "" "subjectAltName="
issue_leaf east $bad/dns-san-only "" "subjectAltName=DNS:checkout.payments.svc"
issue_leaf east $bad/two-uri-sans "" "subjectAltName=critical,URI:spiffe://$td/ns/payments/sa/checkout,URI:spiffe://$td/ns/payments/sa/ledger"
issue_leaf east $bad/non-spiffe-uri "https://checkout.payments"
issue_leaf east $bad/uppercase-trust-domain "spiffe://Cluster.Local/ns/payments/sa/checkout"
issue_leaf east $bad/not-ns-sa-shape "spiffe://$td/workload/checkout"
issue_leaf east $bad/foreign-trust-domain "spiffe://other.mesh/ns/payments/sa/checkout"
issue_leaf east $bad/leaf-is-ca "spiffe://$td/ns/payments/sa/checkout" "basicConstraints=critical,CA:TRUE" "keyUsage=critical,digitalSignature,keyCertSign"
issue_leaf east $bad/no-digital-signature "spiffe://$td/ns/payments/sa/checkout" "keyUsage=critical,keyEncipherment"
issue_leaf east $bad/server-auth-only "spiffe://$td/ns/payments/sa/checkout" "extendedKeyUsage=serverAuth"
issue_leaf east $bad/client-auth-only "spiffe://$td/ns/payments/sa/ledger" "extendedKeyUsage=clientAuth"
# URI SANs with an embedded NUL, written as raw DER (the openssl config cannot spell a NUL): one
# alone, and one beside a valid URI, which makes two URI SANs however the first is read.
san_der() { # URI... (a literal \0 in a URI becomes a NUL byte) -> GeneralNames DER in hex
    python3 - "$@" <<'PY'
import sys
def tlv(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    return bytes([tag]) + head + body
print(tlv(0x30, b"".join(tlv(0x86, u.encode().replace(b"\\0", b"\0")) for u in sys.argv[1:])).hex())
PY
}
issue_leaf east $bad/nul-in-uri "" "subjectAltName=critical,DER:$(san_der "spiffe://$td/ns/payments/sa/checkout\0.evil")"
issue_leaf east $bad/nul-uri-beside-valid-uri "" \
    "subjectAltName=critical,DER:$(san_der "spiffe://$td/ns/payments/sa/audit\0x" "spiffe://$td/ns/payments/sa/checkout")"
# Missing intermediate: the leaf alone, without the east intermediate that signed it.
mkdir -p $bad/missing-intermediate
cp certs-east/payments/checkout/key.pem $bad/missing-intermediate/key.pem
openssl x509 -in certs-east/payments/checkout/cert-chain.pem -out $bad/missing-intermediate/cert-chain.pem

# Off-curve key: the checkout leaf with the last byte of its EC point changed (so its signature
# no longer verifies either); decoding it must fail cleanly on every EC key path.
mkdir -p $bad/off-curve-key
cp certs-east/payments/checkout/key.pem $bad/off-curve-key/key.pem
openssl x509 -in certs-east/payments/checkout/cert-chain.pem -outform DER -out $bad/off-curve-key/leaf.der
python3 - "$bad/off-curve-key/leaf.der" <<'PY'
import sys
der = bytearray(open(sys.argv[1], "rb").read())
at = der.find(bytes([0x03, 0x42, 0x00, 0x04]))   # BIT STRING holding the uncompressed P-256 point
assert at > 0, "no P-256 point found"
der[at + 4 + 63] ^= 0x01                          # last byte of Y
open(sys.argv[1], "wb").write(der)
PY
openssl x509 -inform DER -in $bad/off-curve-key/leaf.der -out $bad/off-curve-key/cert-chain.pem 2>/dev/null \
    || python3 -c "import base64,sys,textwrap; d=open(sys.argv[1],'rb').read(); print('-----BEGIN CERTIFICATE-----\n'+'\n'.join(textwrap.wrap(base64.b64encode(d).decode(),64))+'\n-----END CERTIFICATE-----')" $bad/off-curve-key/leaf.der > $bad/off-curve-key/cert-chain.pem
openssl x509 -in east/ca-cert.pem >> $bad/off-curve-key/cert-chain.pem
rm $bad/off-curve-key/leaf.der

# Inconsistent key: frontend's private scalar with checkout's public point (SEC1), beside
# checkout's chain: the point matches the certificate, the scalar signs for another key.
mkdir -p $bad/inconsistent-key
openssl ec -in certs-east/shop/frontend/key.pem -outform DER -out $bad/inconsistent-key/key.der 2>/dev/null
openssl ec -in certs-east/payments/checkout/key.pem -pubout -outform DER -out $bad/inconsistent-key/pub.der 2>/dev/null
python3 - "$bad/inconsistent-key" <<'PY'
import base64, sys, textwrap
d = sys.argv[1]
key = bytearray(open(d + "/key.der", "rb").read())
point = open(d + "/pub.der", "rb").read()[-65:]   # the uncompressed point ends the SubjectPublicKeyInfo
at = key.find(bytes([0x03, 0x42, 0x00, 0x04]))    # the point in the SEC1 key's BIT STRING
assert at > 0 and point[0] == 0x04, "no P-256 point found"
key[at + 3:at + 3 + 65] = point
body = "\n".join(textwrap.wrap(base64.b64encode(bytes(key)).decode(), 64))
open(d + "/key.pem", "w").write("-----BEGIN EC PRIVATE KEY-----\n" + body + "\n-----END EC PRIVATE KEY-----\n")
PY
cp certs-east/payments/checkout/cert-chain.pem $bad/inconsistent-key/cert-chain.pem
rm $bad/inconsistent-key/key.der $bad/inconsistent-key/pub.der

# CRLs (CRL_PATH tests), made with `openssl ca` over a throwaway database.
make_crl() { # CA_KEY CA_CERT OUT [CERT_TO_REVOKE...]
    local key=$1 cert=$2 crl=$3 db
    shift 3
    db=$(mktemp -d)
    : > "$db/index.txt"
    echo 01 > "$db/crlnumber"
    printf '[ca]\ndefault_ca = crl\n[crl]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n' \
        "$db" "$db" > "$db/ca.cnf"
    for c in "$@"; do
        openssl ca -config "$db/ca.cnf" -keyfile "$key" -cert "$cert" -revoke "$c" -crl_reason keyCompromise 2>/dev/null
    done
    openssl ca -config "$db/ca.cnf" -keyfile "$key" -cert "$cert" -gencrl -out "$crl" 2>/dev/null
    rm -rf "$db"
}
mkdir -p crl
# checkout's identity under a key the east intermediate revoked.
issue_leaf east certs-revoked/payments/checkout "spiffe://$td/ns/payments/sa/checkout"
openssl x509 -in certs-revoked/payments/checkout/cert-chain.pem -out crl/revoked-leaf.pem
openssl x509 -in certs-east/payments/checkout/cert-chain.pem -out crl/checkout-leaf.pem
make_crl east/ca-key.pem east/ca-cert.pem crl/east-revokes-checkout.pem crl/revoked-leaf.pem
# The root revokes the whole east intermediate; west's list revokes nothing.
make_crl root/root-key.pem root/root-cert.pem crl/root-revokes-east.pem east/ca-cert.pem
make_crl west/ca-key.pem west/ca-cert.pem crl/west-empty.pem
make_crl root/root-key.pem root/root-cert.pem crl/root-empty.pem
openssl x509 -in certs-west/payments/ledger/cert-chain.pem -out crl/ledger-leaf.pem
make_crl west/ca-key.pem west/ca-cert.pem crl/west-revokes-ledger.pem crl/ledger-leaf.pem
# A forged list: east's name, another key, revoking the good checkout leaf.
mkdir -p forged
eckey forged/key.pem
openssl req -x509 -new -key forged/key.pem -sha256 -days 30 -subj "/O=hbone-test/CN=cluster-east intermediate" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out forged/cert.pem
make_crl forged/key.pem forged/cert.pem crl/forged-east.pem crl/checkout-leaf.pem
rm crl/revoked-leaf.pem crl/checkout-leaf.pem crl/ledger-leaf.pem

# Bundles: shared root only; shared + unrelated (a root rotation in progress).
cp root/root-cert.pem bundle-root.pem
cat root/root-cert.pem other-root/root-cert.pem > bundle-root-and-other.pem
cp root2/root-cert.pem bundle-root2.pem
cat root/root-cert.pem root2/root-cert.pem > bundle-root-and-root2.pem
echo "test PKI written to $out"
