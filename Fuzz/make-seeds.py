#!/usr/bin/python3
"""Writes the seed corpus of each fuzz target into Fuzz/corpus/TARGET/ (committed; rerun to refresh).
HTTP/2 seeds come from an independent stack (python h2), without the connection preface, which the
h2-server harness sends itself."""
import os, struct, sys
import h2.config, h2.connection

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

for i, s in enumerate(["spiffe://cluster.local/ns/payments/sa/checkout", "spiffe://td/ns/a/sa/b", "spiffe://Cluster.local/ns/x/sa/y",
                       "spiffe://td/ns/a/sa/b/", "spiffe://td/ns/%61/sa/b", "spiffe://td:80/ns/a/sa/b", "spiffe://td/ns/../sa/b"]):
    write("spiffe", "seed%d" % i, s)

socks = [
    b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x14\x1f\x90",
    b"\x05\x01\x00\x05\x01\x00\x04" + b"\x00" * 10 + b"\xff\xff\x7f\x00\x00\x14\x1f\x90hello",
    b"\x05\x01\x00\x05\x01\x00\x03\x1fledger.payments.svc.cluster.local\x00\x50",
    b"\x05\x02\x01\x02", b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",
]
for i, s in enumerate(socks):
    write("socks5", "seed%d" % i, s)

for i, s in enumerate(["127.0.0.20:8080", "[::ffff:127.0.0.20]:8080", "[fd00::1]:443", "10.0.0.0/8", "::ffff:10.0.0.0/104",
                       "::/0", "[fe80::1%eth0]:80", "0.0.0.0:15000", "1.2.3.4:080"]):
    write("address", "seed%d" % i, s)

for i, s in enumerate(["k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,service.name=N2,service.version=V1",
                       "k8s.cluster.name=,k8s.namespace.name= NS2 ,k8s.job.name=J;prop=1,other=x,junk\ncloud.region=r1,k8s.pod.name=P",
                       "service.name=a=b,service.version=\x01,cloud.availability_zone=" + "z" * 300]):
    write("baggage", "seed%d" % i, s)

for i, s in enumerate(["GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n", "POST /logging?level=debug HTTP/1.1\r\n\r\n",
                       "POST /quitquitquit HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "GET /stats/prometheus?a=%zz HTTP/1.1\r\n\r\n"]):
    write("admin-http", "seed%d" % i, s)

config = """workloads:
- uid: west//ledger-0
  name: ledger-0
  namespace: payments
  serviceAccount: ledger
  workloadIps: ["10.0.0.20", "::ffff:10.0.0.21"]
  protocol: HBONE
  node: west
  status: Unhealthy
  locality: {region: r1, zone: z1}
  capacity: 2
  services: {"payments/ledger.payments.svc.cluster.local": {80: 8080}}
services:
- {name: ledger, namespace: payments, hostname: ledger.payments.svc.cluster.local, vips: ["/10.96.0.20"], ports: {"80": 8080},
   loadBalancer: {routingPreferences: [Network, Region, Zone], mode: Failover, healthPolicy: AllowAll}}
policies:
- name: deny
  namespace: payments
  action: Deny
  rules:
  - - - sourceIps: ["10.0.0.0/8"]
hbone:
  node: west
  rootCertificates: /nonexistent/root.pem
  certificates: {directory: /nonexistent}
  listen: {socks5: 127.0.0.1:15080}
  timeouts: {handshake: 2s, connect: 10s}
  h2: {streamWindow: 1048576, maxPrematureResetsPerSecond: 100}
"""
write("config", "seed0", config)
write("config", "seed1", "hbone: {node: x, rootCertificates: /r, certificates: {ca: /c, ttl: 1h}}\n")

policy = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: payments}
spec:
  selector: {matchLabels: {app: ledger}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/payments/sa/checkout"], ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {ports: ["8080"], methods: ["GET"]}}]
    when: [{key: source.ip, values: ["10.1.0.0/16"]}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec: {action: DENY, rules: [{from: [{source: {notNamespaces: ["payments"]}}]}]}
"""
write("authz-policy", "seed0", policy)
write("authz-policy", "seed1", "kind: List\nitems: []\n")
# Prefix, suffix and presence patterns, not-fields, dry-run, AUDIT, a mapped IPv6 block and an empty
# spec: the target also decides on what loads (AuthzOracle).
write("authz-policy", "seed2", """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-prefix, namespace: payments}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/*"], notPrincipals: ["*/sa/intruder"]}}]
    to: [{operation: {ports: ["9000", "9001"], notPorts: ["9002"]}}]
  - from: [{source: {namespaces: ["front*"], notIpBlocks: ["10.9.0.0/16"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: audit-all
  namespace: payments
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{from: [{source: {principals: ["*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: istio-system}
spec:
  action: AUDIT
  rules: [{to: [{operation: {ports: ["9000"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ip, namespace: payments}
spec:
  selector: {matchLabels: {app: ledger, tier: db}}
  action: DENY
  rules: [{from: [{source: {ipBlocks: ["::ffff:10.1.2.0/120"]}}], to: [{operation: {notPorts: ["22"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing, namespace: payments}
spec: {}
""")

def client():
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                                                      normalize_outbound_headers=False))
    c.initiate_connection()
    return c

def strip_preface(b):
    return b[24:]

c = client()
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "CONNECT"), (":authority", "10.0.0.20:8080"), ("forwarded", 'for="10.0.0.10:1"')])
c.send_data(sid, b"hello")
c.end_stream(sid)
write("h2-server", "connect-data-fin", strip_preface(c.data_to_send()))

c = client()
out = c.data_to_send()
for _ in range(20):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "CONNECT"), (":authority", "10.0.0.20:8080")])
    c.reset_stream(sid)
    out += c.data_to_send()
write("h2-server", "rapid-reset", strip_preface(out))

c = client()
c.ping(b"12345678")
c.increment_flow_control_window(1 << 20)
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "GET"), (":authority", "x"), (":path", "/"), (":scheme", "https")], end_stream=True)
write("h2-server", "ping-window-get", strip_preface(c.data_to_send()))

# Raw frames h2 would not send: DATA on stream 0, a huge WINDOW_UPDATE, a truncated HEADERS.
settings = struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)
write("h2-server", "data-on-stream-0", settings + struct.pack(">I", 4)[1:] + b"\x00\x00" + struct.pack(">I", 0) + b"junk")
write("h2-server", "window-overflow", settings + struct.pack(">I", 4)[1:] + b"\x08\x00" + struct.pack(">I", 0) + struct.pack(">I", 0x7fffffff) * 2)
write("h2-server", "truncated-headers", settings + struct.pack(">I", 40)[1:] + b"\x01\x04" + struct.pack(">I", 1) + b"\x82\x86")

# gRPC DATA: length-prefixed messages (the first byte of the input picks the chunk size), a
# compressed flag, an oversized length, and trailers text with percent escapes.
def grpc_frame(payload, flag=0):
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload
write("grpc", "two-messages", b"\x03" + grpc_frame(b"\x0a\x04test") + grpc_frame(b""))
write("grpc", "compressed", b"\x01" + grpc_frame(b"x", flag=1))
write("grpc", "oversized", b"\x05" + b"\x00\x7f\xff\xff\xff" + b"data")
write("grpc", "cut-short", b"\x02" + b"\x00\x00\x00\x00\x10" + b"short")
write("grpc", "percent", b"\x00" + b"grpc-message: caf%C3%A9%2 %zz")

# A peer proxy's answers to one CONNECT (stream 1), from python h2 as the server, without its
# SETTINGS (the hbone-peer harness sends an empty one first). The first byte is the harness's mode:
# bit 0 the peer half-closes after, bit 1 the application half-closes, bits 2-3 the record size.
def peer(streams=1):
    cl = client()
    sids = []
    for _ in range(streams):
        sids.append(cl.get_next_available_stream_id())
        cl.send_headers(sids[-1], [(":method", "CONNECT"), (":authority", "10.1.0.20:8080")])
    srv = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
    srv.initiate_connection()
    srv.data_to_send()
    srv.receive_data(cl.data_to_send())
    return (srv, sids[0]) if streams == 1 else (srv, sids)

srv, sid = peer()
srv.send_headers(sid, [(":status", "200")])
srv.send_data(sid, b"world")
srv.end_stream(sid)
answer = srv.data_to_send()
write("hbone-peer", "tunnel-200-echo", b"\x00" + answer)
write("hbone-peer", "tunnel-200-one-byte-records-app-closes", b"\x06" + answer)
srv, sid = peer()
srv.send_headers(sid, [(":status", "503")], end_stream=True)
srv.close_connection()
write("hbone-peer", "refused-503-then-goaway", b"\x00" + srv.data_to_send())
srv, sid = peer()
srv.reset_stream(sid, error_code=7)
write("hbone-peer", "rst-refused-stream", b"\x08" + srv.data_to_send())
srv, sid = peer()
srv.send_headers(sid, [(":status", "200")])
srv.increment_flow_control_window(1000)
srv.ping(b"12345678")
srv.send_data(sid, b"world")
write("hbone-peer", "200-window-ping-peer-half-closes", b"\x0d" + srv.data_to_send())
# All three tunnels of the harness answered and ended, interleaved.
srv, sids = peer(3)
for sid in sids:
    srv.send_headers(sid, [(":status", "200")])
for sid in sids:
    srv.send_data(sid, b"world", end_stream=True)
write("hbone-peer", "three-tunnels-200-echo", b"\x00" + srv.data_to_send())
# A 200 that also ends the stream while the application has half-closed (its END_STREAM was
# dropped: the tunnel never ended), then a frame header far over the frame size.
srv, sid = peer()
srv.send_headers(sid, [(":status", "200")], end_stream=True)
write("hbone-peer", "200-ends-stream-app-half-closed", b"\x06" + srv.data_to_send() + b"\x00\xff\xff\xff\xff\xff\xff\xff\xff")
# A 200, then RST_STREAM(NO_ERROR) before either side ended (taken for a clean close before).
srv, sid = peer()
srv.send_headers(sid, [(":status", "200")])
srv.reset_stream(sid, error_code=0)
write("hbone-peer", "200-then-reset-no-error", b"\x0d" + srv.data_to_send())
# As the east-west gateway (mode bit 4): three legs answered 200, then DATA on each that is not
# the TLS the inner clients expect; and a gateway that refuses one leg and resets another.
srv, sids = peer(3)
for sid in sids:
    srv.send_headers(sid, [(":status", "200")])
srv.send_data(sids[0], b"\x16\x03\x03\x00\x05hello")
srv.send_data(sids[1], b"\x15\x03\x03\x00\x02\x02\x28", end_stream=True)
write("hbone-peer", "gateway-200-then-not-tls", b"\x10" + srv.data_to_send())
srv, sids = peer(3)
srv.send_headers(sids[0], [(":status", "503")], end_stream=True)
srv.reset_stream(sids[1], error_code=7)
srv.send_headers(sids[2], [(":status", "200")])
write("hbone-peer", "gateway-503-reset-and-silence", b"\x13" + srv.data_to_send())
# Raw: DATA on a stream the client never opened, and a response on another.
write("hbone-peer", "data-on-unopened-stream", b"\x00" + struct.pack(">I", 2)[1:] + b"\x00\x00" + struct.pack(">I", 3) + b"xx"
      + struct.pack(">I", 1)[1:] + b"\x01\x04" + struct.pack(">I", 5) + b"\x88")

# A client proxy's frames into the server proxy (hbone-inbound), from python h2 as the client,
# after its preface (the harness sends the preface and an empty SETTINGS first). First byte: the
# harness's mode (bit 0 the client half-closes after, bits 2-3 the record size).
def inbound(streams, mode=0):
    c = client()
    for authority, extra, data, reset in streams:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)] + extra)
        if reset:
            c.reset_stream(sid)
            continue
        if data:
            c.send_data(sid, data)
        c.end_stream(sid)
    return bytes([mode]) + strip_preface(c.data_to_send())

write("hbone-inbound", "connect-echo-fin", inbound([("10.1.0.20:8080", [], b"hello", False)]))
write("hbone-inbound", "connect-echo-one-byte-records-half-close", inbound([("10.1.0.20:8080", [], b"hello", False)], mode=5))
write("hbone-inbound", "connect-denied-port", inbound([("10.1.0.20:9000", [], b"x", False)]))
write("hbone-inbound", "denied-port-spellings", inbound([(a, [], b"x", False) for a in
      ["[::ffff:10.1.0.20]:9000", "[::ffff:a01:114]:9000", "10.1.0.20:09000", "[0:0:0:0:0:ffff:10.1.0.20]:9000"]]))
write("hbone-inbound", "forwarded-claims", inbound([("10.1.0.20:8080", [("forwarded", 'for="10.9.9.9:1"'), ("baggage", "k8s.namespace.name=x")], b"hi", False)]))
# CONNECTs naming a service (an east-west gateway's inner CONNECT): its port onto the echo server,
# onto the port the DENY policy closes, one it lacks, and other services.
write("hbone-inbound", "service-hostnames", inbound([(a, [("x-istio-origin-network", "net-b")], b"x", False) for a in
      ["ledger.payments.svc.cluster.local:80", "ledger.payments.svc.cluster.local:90", "LEDGER.payments.svc.cluster.local:91",
       "checkout.payments.svc.cluster.local:80", "ledger:80", "ledger.payments.svc.cluster.local:15008"]]))
write("hbone-inbound", "rapid-reset", inbound([("10.1.0.20:8080", [], b"", True)] * 30))
write("hbone-inbound", "ten-streams", inbound([("10.1.0.20:8080", [], b"data%d" % i, False) for i in range(10)]))

# Certificates (the certificate target): an Istio-shaped SVID and its intermediate, and leaves with
# one defect each. Deterministic: fixed P-256 keys and dates, and Ed25519 signatures (those are
# deterministic; the target parses and judges, a signature need not verify).
import datetime, struct as _struct
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

def cert(subject_key, signer, issuer_name, subject_name, serial, extensions):
    b = (x509.CertificateBuilder().subject_name(subject_name).issuer_name(issuer_name)
         .public_key(subject_key.public_key()).serial_number(serial)
         .not_valid_before(datetime.datetime(2026, 1, 1)).not_valid_after(datetime.datetime(2036, 1, 1)))
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(signer, None)

ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hbone-test"), x509.NameAttribute(NameOID.COMMON_NAME, "cluster-east")])
intermediate = cert(ca_key, ca_key, ca_name, ca_name, 2, [
    (x509.BasicConstraints(ca=True, path_length=0), True),
    (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)])

def leaf(sans, serial, ca=False, digital_signature=True, eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)):
    key = ec.derive_private_key(1000 + serial, ec.SECP256R1())
    exts = [(x509.BasicConstraints(ca=ca, path_length=None), True),
            (x509.KeyUsage(digital_signature, False, True, False, False, ca, False, False, False), True),
            (x509.ExtendedKeyUsage(list(eku)), False)]
    if sans is not None:
        exts.append((x509.SubjectAlternativeName(sans), True))
    return cert(key, ca_key, ca_name, x509.Name([]), serial, exts)

def der(c): return c.public_bytes(serialization.Encoding.DER)
def with_issuer(c): return _struct.pack(">H", len(der(c))) + der(c) + der(intermediate)

uri = lambda s: x509.UniformResourceIdentifier(s)
td = "spiffe://cluster.local/ns/payments/sa/"
write("certificate", "svid", with_issuer(leaf([uri(td + "checkout")], 10)))
write("certificate", "svid-pem-chain",
      leaf([uri(td + "checkout")], 11).public_bytes(serialization.Encoding.PEM) + intermediate.public_bytes(serialization.Encoding.PEM))
write("certificate", "two-uri-sans", with_issuer(leaf([uri(td + "checkout"), uri(td + "ledger")], 12)))
write("certificate", "nul-uri-beside-valid-uri", with_issuer(leaf([uri(td + "audit\x00x"), uri(td + "checkout")], 13)))
write("certificate", "dns-and-uri", with_issuer(leaf([x509.DNSName("checkout.payments.svc"), uri(td + "checkout")], 14)))
write("certificate", "no-san", with_issuer(leaf(None, 15)))
write("certificate", "leaf-is-ca", with_issuer(leaf([uri(td + "checkout")], 16, ca=True)))
write("certificate", "client-auth-only", with_issuer(leaf([uri(td + "checkout")], 17, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))))

# Private keys (the private-key target): P-256 as PKCS#8 and SEC1, P-384, Ed25519, a P-256 key
# behind an EC PARAMETERS block, and SEC1 keys whose public point is another key's.
def pem(key, fmt):
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
p256_key, other_key = ec.derive_private_key(4242, ec.SECP256R1()), ec.derive_private_key(4343, ec.SECP256R1())
write("private-key", "p256-pkcs8", pem(p256_key, serialization.PrivateFormat.PKCS8))
write("private-key", "p256-sec1", pem(p256_key, serialization.PrivateFormat.TraditionalOpenSSL))
write("private-key", "p384-pkcs8", pem(ec.derive_private_key(4444, ec.SECP384R1()), serialization.PrivateFormat.PKCS8))
write("private-key", "ed25519", pem(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))), serialization.PrivateFormat.PKCS8))
write("private-key", "p256-after-parameters",
      b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + pem(p256_key, serialization.PrivateFormat.TraditionalOpenSSL))
def point(key):
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
sec1 = bytearray(p256_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
at = sec1.find(b"\x03\x42\x00\x04")
sec1[at + 3:at + 3 + 65] = point(other_key)
import base64 as _b64, textwrap as _tw
write("private-key", "p256-sec1-other-point",
      "-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(_tw.wrap(_b64.b64encode(bytes(sec1)).decode(), 64)) + "\n-----END EC PRIVATE KEY-----\n")

# DNS queries as pods send them (RFC 1035 by hand): short and search-expanded service names, AAAA,
# a wildcard match, EDNS, a compression pointer in an additional record, and other types.
def dns_query(qid, name, qtype=1, edns=None, flags=0x0100, extra=b""):
    q = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return q + extra
dns_seeds = [dns_query(1, "ledger"), dns_query(2, "ledger.payments.payments.svc.cluster.local", edns=1232),
             dns_query(3, "LEDGER.payments.svc", 28), dns_query(4, "a.b.example.com"), dns_query(5, "db.payments.svc.cluster.local", 28, 4096),
             dns_query(6, "www.google.com", 16), dns_query(7, "private.shop", flags=0x2900),
             struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 1) + b"\x02db\0\0\x01\0\x01" + b"\xc0\x0c\0\x29\x10\0\0\0\0\0\0\0"]
for i, s in enumerate(dns_seeds):
    write("dns", "seed%d" % i, s)

# Upstream answers to the proxy's own lookup of api.example.test: addresses, a CNAME chain with a
# compressed target, NXDOMAIN with an SOA, SERVFAIL, a truncated one, and AAAA records.
def dns_answer(flags, answers=b"", ancount=0, authority=b"", nscount=0, qtype=1):
    head = struct.pack(">HHHHHH", 0, flags, 1, ancount, nscount, 0)
    q = b"\x03api\x07example\x04test\0" + struct.pack(">HH", qtype, 1)
    return head + q + answers + authority
def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata
soa = rr(b"\xc0\x10", 6, 60, b"\x02ns\xc0\x10\x0ahostmaster\xc0\x10" + struct.pack(">IIIII", 1, 2, 3, 4, 30))
answer_seeds = [
    dns_answer(0x8180, rr(b"\xc0\x0c", 1, 60, bytes([10, 0, 0, 1])) + rr(b"\xc0\x0c", 1, 30, bytes([10, 0, 0, 2])), 2),
    dns_answer(0x8180, rr(b"\xc0\x0c", 5, 300, b"\x04edge\x03cdn\xc0\x18") + rr(b"\xc0\x2e", 1, 20, bytes([192, 0, 2, 7])), 2),
    dns_answer(0x8183, authority=soa, nscount=1),
    dns_answer(0x8182),
    dns_answer(0x8380),
    dns_answer(0x8180, rr(b"\xc0\x0c", 28, 50, bytes(range(16))), 1, qtype=28),
]
for i, s in enumerate(answer_seeds):
    write("dns-answer", "seed%d" % i, s)
