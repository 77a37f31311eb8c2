#!/usr/bin/env python3
"""A DNS client and a stand-in upstream resolver for hbone's tests, written from RFC 1035 with the
standard library only (independent of hbone's own DNS code).

  dns_tool.py query --server HOST:PORT --name NAME [--type A|AAAA|TXT] [--tcp] [--source IP] [--raw HEX]
      prints {"rcode", "aa", "tc", "id_ok", "answers": [[name, type, ttl, data], ...]} or {"error"}
  dns_tool.py upstream --listen HOST:PORT [--log FILE]
      answers UDP and TCP: any name -> A 203.0.113.1; nx.* -> NXDOMAIN; slow.* -> never;
      big.* -> 100 A records (over UDP that does not fit 512 bytes: TC set, no records);
      spoof.* -> first a reply with another ID and one for another name (both 6.6.6.6), then the
      real answer. Each query is logged as "proto client-ip name type" lines to FILE.
      --zone FILE (JSON) answers its names first: {"name": {"A": [ip], "AAAA": [ip], "CNAME":
      "target", "ttl": N}}; a CNAME is followed within the zone, its records put before the
      target's; a name in the zone without records of the type asked gets NOERROR and an SOA
      (negative TTL 5) in the authority section. "truncate": true answers UDP with TC set and no
      records (the whole answer over TCP); "delay": seconds holds the answer that long. The key
      "_nxdomain_under": [suffix, ...] answers NXDOMAIN (with the SOA) for any other name under
      those suffixes.
"""
import argparse, json, os, random, socket, struct, sys, threading, time

TYPES = {"A": 1, "AAAA": 28, "TXT": 16, "CNAME": 5}
NAMES = {v: k for k, v in TYPES.items()}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(msg, off):
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            return ".".join(labels), (end if jumped else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    raise ValueError("name loop")


def build_query(qid, name, qtype):
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", qtype, 1)


def parse_response(msg):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        name, off = read_name(msg, off)
        rtype, _, ttl, length = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        data = msg[off:off + length]
        if rtype == 1:
            value = socket.inet_ntop(socket.AF_INET, data)
        elif rtype == 28:
            value = socket.inet_ntop(socket.AF_INET6, data)
        elif rtype == 5:
            value, _ = read_name(msg, off)
        else:
            value = data.hex()
        off += length
        answers.append([name, NAMES.get(rtype, str(rtype)), ttl, value])
    return {"id": qid, "rcode": flags & 0xF, "aa": bool(flags & 0x400), "tc": bool(flags & 0x200),
            "ra": bool(flags & 0x80), "answers": answers}


def query(args):
    host, port = args.server.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    qid = random.randrange(65536)
    msg = bytes.fromhex(args.raw) if args.raw else build_query(qid, args.name, TYPES[args.type])
    s = socket.socket(family, socket.SOCK_STREAM if args.tcp else socket.SOCK_DGRAM)
    s.settimeout(args.timeout)
    try:
        if args.source:
            s.bind((args.source, 0))
        if args.tcp:
            s.connect((host.strip("[]"), int(port)))
            s.sendall(struct.pack(">H", len(msg)) + msg)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed before the answer")
                buf += chunk
            reply = buf[2:]
        else:
            s.sendto(msg, (host.strip("[]"), int(port)))
            reply, _ = s.recvfrom(65536)
    except OSError as e:
        print(json.dumps({"error": str(e) or type(e).__name__}))
        return
    out = parse_response(reply)
    out["id_ok"] = out["id"] == (struct.unpack(">H", msg[:2])[0])
    out["size"] = len(reply)
    print(json.dumps(out))


def zone_answer(zone, qid, name, qtype, question, proto):
    """The zone's answer for `name`, or None when the zone does not hold it."""
    key = name.lower().rstrip(".")
    entry = zone.get(key)
    rcode = 0
    if entry is None:
        if not any(key.endswith("." + suffix.lower()) for suffix in zone.get("_nxdomain_under", [])):
            return None
        entry, rcode = {}, 3
    if entry.get("truncate") and proto == "udp":
        return struct.pack(">HHHHHH", qid, 0x8380, 1, 0, 0, 0) + question
    if entry.get("delay"):
        time.sleep(entry["delay"])
    records, owner, n_cname = b"", name, 0
    while "CNAME" in entry and n_cname < 10:
        target = entry["CNAME"]
        rdata = encode_name(target)
        records += encode_name(owner) + struct.pack(">HHIH", 5, 1, entry.get("ttl", 60), len(rdata)) + rdata
        owner, entry, n_cname = target, zone.get(target.lower(), {}), n_cname + 1
    family = {1: ("A", socket.AF_INET), 28: ("AAAA", socket.AF_INET6)}.get(qtype)
    addrs = entry.get(family[0], []) if family else []
    for ip in addrs:
        rdata = socket.inet_pton(family[1], ip)
        records += encode_name(owner) + struct.pack(">HHIH", qtype, 1, entry.get("ttl", 60), len(rdata)) + rdata
    authority, ns = b"", 0
    if not addrs:
        soa = encode_name("example.test") + encode_name("hostmaster.example.test") + struct.pack(">IIIII", 1, 3600, 600, 86400, 5)
        authority = encode_name("example.test") + struct.pack(">HHIH", 6, 1, 60, len(soa)) + soa
        ns = 1
    head = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, n_cname + len(addrs), ns, 0)
    return head + question + records + authority


def answer(msg, proto, client, log, zone=None):
    qid, flags = struct.unpack(">HH", msg[:4])
    name, off = read_name(msg, 12)
    qtype, qclass = struct.unpack(">HH", msg[off:off + 4])
    question = msg[12:off + 4]
    with open(log, "a") if log else open(os.devnull, "w") as f:
        f.write("%s %s %s %s\n" % (proto, client, name, NAMES.get(qtype, qtype)))
    lower = name.lower()
    if zone:
        found = zone_answer(zone, qid, name, qtype, question, proto)
        if found is not None:
            return [found]
    if lower.startswith("slow."):
        return []

    def reply(rid, rcode, records, q=question, tc=False):
        head = struct.pack(">HHHHHH", rid, 0x8180 | rcode | (0x200 if tc else 0), 1, len(records), 0, 0)
        body = b""
        for ip in records:
            body += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        return head + q + body

    if lower.startswith("nx."):
        return [reply(qid, 3, [])]
    if lower.startswith("big."):
        records = ["198.51.100.%d" % (i % 250) for i in range(100)]
        if proto == "udp":
            return [reply(qid, 0, [], tc=True)]
        return [reply(qid, 0, records)]
    if lower.startswith("spoof."):
        other = encode_name("other.example") + struct.pack(">HH", qtype, qclass)
        return [reply(qid ^ 0x5555, 0, ["6.6.6.6"]), reply(qid, 0, ["6.6.6.6"], q=other), reply(qid, 0, ["203.0.113.1"])]
    return [reply(qid, 0, ["203.0.113.1"] if qtype == 1 else [])]


def upstream(args):
    zone = {}
    if args.zone:
        with open(args.zone) as f:
            zone = {k.lower().rstrip("."): v for k, v in json.load(f).items()}
    host, port = args.listen.rsplit(":", 1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, int(port)))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, int(port)))
    tcp.listen(16)

    def answer_udp(msg, peer):
        for r in answer(msg, "udp", peer[0], args.log, zone):
            udp.sendto(r, peer)

    def serve_udp():
        while True:
            msg, peer = udp.recvfrom(65536)
            # Each query on its own thread: a zone entry's delay holds only its own answer.
            threading.Thread(target=answer_udp, args=(msg, peer), daemon=True).start()

    def serve_conn(c, peer):
        buf = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                    n = struct.unpack(">H", buf[:2])[0]
                    msg, buf = buf[2:2 + n], buf[2 + n:]
                    for r in answer(msg, "tcp", peer[0], args.log, zone)[-1:]:
                        c.sendall(struct.pack(">H", len(r)) + r)
        finally:
            c.close()

    threading.Thread(target=serve_udp, daemon=True).start()
    if args.ready:
        open(args.ready, "w").close()
    while True:
        c, peer = tcp.accept()
        threading.Thread(target=serve_conn, args=(c, peer), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("query")
    q.add_argument("--server", required=True)
    q.add_argument("--name", default="example.com")
    q.add_argument("--type", default="A", choices=sorted(TYPES))
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--source")
    q.add_argument("--raw")
    q.add_argument("--timeout", type=float, default=5)
    u = sub.add_parser("upstream")
    u.add_argument("--listen", required=True)
    u.add_argument("--log")
    u.add_argument("--ready")
    u.add_argument("--zone")
    args = p.parse_args()
    query(args) if args.mode == "query" else upstream(args)


if __name__ == "__main__":
    main()
