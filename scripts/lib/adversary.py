#!/usr/bin/python3
"""A hostile or broken peer for the adversarial integration tests. Each mode prints one JSON line.

  adversary.py socks --socks A --source IP --atyp 1|3|4 --host H --port P [--early N]
      one SOCKS5 CONNECT with the address spelled as given (atyp 4 takes any IPv6 spelling, 3 sends
      the text as a domain name); early data of N bytes goes in the same write as the request.
      {reply: code or null (EOF), echoed: bool}
  adversary.py h2garbage --connect A --cert-dir D --ca F
      mTLS + HTTP/2 preface, then a DATA frame on stream 0 (a connection error).
      {goaway: error code or null, closed: bool, after: seconds until the server closed}
  adversary.py rapidreset --connect A --cert-dir D --ca F --authority A --count N
      N CONNECTs, each reset at once, in one write. {goaway, closed, after, responses}
  adversary.py silent --connect A --cert-dir D --ca F
      completes TLS, never sends the HTTP/2 preface. {closed, after}
  adversary.py mute-server --listen A --cert-dir D --ca F --record FILE
      an HBONE server that completes TLS and SETTINGS but never answers a CONNECT; appends one
      line per accepted connection to FILE.
  adversary.py slowloris --connect A --count N --hold S
      opens N TCP connections, sends nothing, holds them S seconds. {opened}
  adversary.py garbage --connect A --count N
      N random bytes on a fresh plain TCP connection (no TLS, no SOCKS). {closed, after}
  adversary.py pingflood --connect A --cert-dir D --ca F --count N
      N PINGs (and as many SETTINGS) after the preface, never reading the ACKs. {goaway, closed, after}
  adversary.py headerflood --connect A --cert-dir D --ca F --count N
      a CONNECT HEADERS without END_HEADERS, then N CONTINUATION frames of junk headers. {goaway, closed, after}
  adversary.py windowabuse --connect A --cert-dir D --ca F
      WINDOW_UPDATEs that push the connection window past 2^31-1. {goaway, closed, after}"""
import argparse, json, os, socket, ssl, struct, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from h2_interop import tls_context, h2conn
import h2.events

def split(a):
    h, p = a.rsplit(":", 1)
    return h.strip("[]"), int(p)

def socks(a):
    host, port = split(a.socks)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(15)
    s.bind((a.source, 0))
    s.connect((host, port))
    if a.atyp == 1:
        addr = b"\x01" + socket.inet_pton(socket.AF_INET, a.host)
    elif a.atyp == 4:
        addr = b"\x04" + socket.inet_pton(socket.AF_INET6, a.host)
    else:
        addr = b"\x03" + bytes([len(a.host)]) + a.host.encode()
    early = bytes((i * 7) % 251 for i in range(a.early))
    s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00" + addr + struct.pack(">H", a.port) + early)
    got = b""
    try:
        while len(got) < 12:
            chunk = s.recv(12 - len(got))
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    result = {"reply": got[3] if len(got) >= 4 and got[:2] == b"\x05\x00" else None, "echoed": False}
    if result["reply"] == 0 and a.early:
        s.shutdown(socket.SHUT_WR)
        back = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                back += chunk
        except OSError:
            pass
        result["echoed"] = back == early
    s.close()
    print(json.dumps(result))

def tls_client(a):
    host, port = split(a.connect)
    raw = socket.create_connection((host, port), timeout=10)
    return tls_context(False, a.cert_dir, a.ca).wrap_socket(raw)

def wait_close(s, on_data, limit=30):
    """Reads until the server closes or `limit` seconds pass, handing each chunk to `on_data`.
    Returns (closed, seconds)."""
    start = time.monotonic()
    s.settimeout(limit)
    try:
        while time.monotonic() - start < limit:
            data = s.recv(65536)
            if not data:
                return True, time.monotonic() - start
            on_data(data)
    except socket.timeout:
        return False, time.monotonic() - start
    except (ConnectionResetError, ssl.SSLError, OSError):
        pass
    return True, time.monotonic() - start

class H2Reader:
    """Feeds a python-h2 connection, answering what it must; keeps the GOAWAY code and responses."""
    def __init__(self, s, c):
        self.s, self.c, self.goaway, self.responses = s, c, None, 0
    def __call__(self, data):
        try:
            events = self.c.receive_data(data)
        except Exception:
            return
        for ev in events:
            if isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = int(ev.error_code)
            elif isinstance(ev, h2.events.ResponseReceived):
                self.responses += 1
        try:
            self.s.sendall(self.c.data_to_send())
        except OSError:
            pass

class RawReader:
    """Splits raw HTTP/2 frames; keeps the error code of a GOAWAY."""
    def __init__(self):
        self.buf, self.goaway = b"", None
    def __call__(self, data):
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            if self.buf[3] == 7 and length >= 8:
                self.goaway = int.from_bytes(self.buf[13:17], "big")
            self.buf = self.buf[9 + length:]

def h2garbage(a):
    s = tls_client(a)
    c = h2conn(True)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    # DATA on stream 0: a connection error of type PROTOCOL_ERROR (RFC 9113 §6.1).
    s.sendall(struct.pack(">I", 4)[1:] + b"\x00\x00" + struct.pack(">I", 0) + b"junk")
    r = H2Reader(s, c)
    closed, after = wait_close(s, r)
    print(json.dumps({"goaway": r.goaway, "closed": closed, "after": after}))

def rapidreset(a):
    s = tls_client(a)
    c = h2conn(True)
    c.initiate_connection()
    out = c.data_to_send()
    for _ in range(a.count):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "CONNECT"), (":authority", a.authority)], end_stream=False)
        c.reset_stream(sid)
        out += c.data_to_send()
    try:
        s.sendall(out)
    except OSError:
        pass
    r = H2Reader(s, c)
    closed, after = wait_close(s, r)
    print(json.dumps({"goaway": r.goaway, "closed": closed, "after": after, "responses": r.responses}))

def silent(a):
    s = tls_client(a)
    closed, after = wait_close(s, lambda data: None)
    print(json.dumps({"closed": closed, "after": after}))

def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

def preface_and_settings(s):
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))

def report(s, limit=30):
    r = RawReader()
    closed, after = wait_close(s, r, limit)
    print(json.dumps({"goaway": r.goaway, "closed": closed, "after": after}))

def garbage(a):
    host, port = split(a.connect)
    s = socket.create_connection((host, port), timeout=10)
    start = time.monotonic()
    try:
        s.sendall(os.urandom(a.count))
        s.settimeout(15)
        while s.recv(65536):
            pass
        closed = True
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    print(json.dumps({"closed": closed, "after": time.monotonic() - start}))

def raw_attack(a, chunks):
    """mTLS, the HTTP/2 preface and SETTINGS, then each chunk of raw frames (until the server stops
    taking them); reports how the server ended the connection."""
    s = tls_client(a)
    preface_and_settings(s)
    try:
        for chunk in chunks:
            s.sendall(chunk)
    except OSError:
        pass
    report(s)

def pingflood(a):
    raw_attack(a, [b"".join(frame(6, 0, 0, struct.pack(">Q", i)) + frame(4, 0, 0, b"") for i in range(a.count))])

def headerflood(a):
    # HEADERS (:method GET, indexed) without END_HEADERS, then CONTINUATION frames of junk header-block bytes.
    junk = b"".join(b"\x00\x07x-junk" + bytes([len(str(i))]) + str(i).encode() + b"\x64" + b"v" * 100 for i in range(10))
    chunk = b"".join(frame(9, 0, 1, junk) for _ in range(100))
    raw_attack(a, [frame(1, 0, 1, b"\x82")] + [chunk] * max(1, a.count // 100))

def windowabuse(a):
    raw_attack(a, [frame(8, 0, 0, struct.pack(">I", 0x7fffffff)) + frame(8, 0, 0, struct.pack(">I", 0x7fffffff))])

def mute_server(a):
    host, port = split(a.listen)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    ctx = tls_context(True, a.cert_dir, a.ca)
    def serve(raw):
        try:
            s = ctx.wrap_socket(raw, server_side=True)
            c = h2conn(False)
            c.initiate_connection()
            s.sendall(c.data_to_send())
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        with open(a.record, "a") as f:
                            f.write("request\n")
                s.sendall(c.data_to_send())
        except Exception:
            return
    while True:
        raw, _ = ls.accept()
        with open(a.record, "a") as f:
            f.write("connection\n")
        threading.Thread(target=serve, args=(raw,), daemon=True).start()

def slowloris(a):
    host, port = split(a.connect)
    held = []
    for _ in range(a.count):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect((host, port))
            held.append(s)
        except OSError:
            pass
    print(json.dumps({"opened": len(held)}))
    sys.stdout.flush()
    time.sleep(a.hold)
    for s in held:
        s.close()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--socks")
    p.add_argument("--source", default="127.0.0.1")
    p.add_argument("--atyp", type=int, default=1)
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--early", type=int, default=0)
    p.add_argument("--connect")
    p.add_argument("--listen")
    p.add_argument("--cert-dir")
    p.add_argument("--ca")
    p.add_argument("--authority")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--hold", type=float, default=1)
    p.add_argument("--record")
    a = p.parse_args()
    modes = {"socks": socks, "h2garbage": h2garbage, "rapidreset": rapidreset, "silent": silent,
             "mute-server": mute_server, "slowloris": slowloris, "garbage": garbage, "pingflood": pingflood,
             "headerflood": headerflood, "windowabuse": windowabuse}
    if a.mode not in modes:
        sys.exit("unknown mode " + a.mode)
    modes[a.mode](a)

if __name__ == "__main__":
    main()
