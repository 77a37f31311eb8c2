#!/usr/bin/env python3
"""Drives tunnels through a SOCKS5 listener for integration tests. Prints one JSON line.
  tunnel_client.py echo       --socks A --source IP --dest IP:PORT --size N
  tunnel_client.py concurrent --socks A --source IP --dest IP:PORT --count N
  tunnel_client.py halfclose  --socks A --source IP --dest IP:PORT
  tunnel_client.py expect-fail --socks A --source IP --dest IP:PORT
  tunnel_client.py slow       --socks A --source IP --dest IP:PORT --size N  (sends fast, reads slowly)"""
import argparse, hashlib, json, os, socket, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from socks_client import socks_connect, read_all

def echo(a, size):
    s = socks_connect(a.socks, a.source, *split(a.dest))
    s.settimeout(60)
    data = os.urandom(min(size, 1 << 20))
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    received = [0]
    def reader():
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return
            recv_hash.update(chunk)
            received[0] += len(chunk)
    t = threading.Thread(target=reader)
    t.start()
    left = size
    while left > 0:
        chunk = data[: min(left, len(data))]
        s.sendall(chunk)
        sent_hash.update(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    s.close()
    return {"sent": size, "received": received[0], "intact": sent_hash.digest() == recv_hash.digest() and received[0] == size}

def split(dest):
    h, p = dest.rsplit(":", 1)
    return h, int(p)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--socks", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--size", type=int, default=1)
    p.add_argument("--count", type=int, default=1)
    a = p.parse_args()
    if a.mode == "echo":
        start = time.monotonic()
        r = echo(a, a.size)
        r["seconds"] = time.monotonic() - start
        print(json.dumps(r))
    elif a.mode == "concurrent":
        # Open every tunnel first, hold them all open, then echo on each.
        socks = []
        for _ in range(a.count):
            socks.append(socks_connect(a.socks, a.source, *split(a.dest), timeout=30))
        ok = 0
        for i, s in enumerate(socks):
            msg = ("tunnel-%d" % i).encode()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
            ok += got == msg
        for s in socks:
            s.close()
        print(json.dumps({"count": a.count, "ok": ok}))
    elif a.mode == "halfclose":
        # The client half-closes first; the echo must still come back in full afterwards.
        s = socks_connect(a.socks, a.source, *split(a.dest))
        s.settimeout(20)
        msg = b"x" * 100000
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
        print(json.dumps({"intact": got == msg, "received": len(got)}))
    elif a.mode == "serverfirst":
        # The server half-closes first; we read its EOF, then keep sending (our direction stays open).
        s = socks_connect(a.socks, a.source, *split(a.dest))
        s.settimeout(20)
        got = read_all(s)
        s.sendall(b"y" * a.size)
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(1)
        except OSError:
            pass
        s.close()
        print(json.dumps({"greeting": got.decode(errors="replace"), "sent_after_eof": a.size}))
    elif a.mode == "hold":
        # Opens a tunnel, echoes once, then holds it open until the peer closes it or --size seconds pass.
        s = socks_connect(a.socks, a.source, *split(a.dest))
        s.sendall(b"hi")
        first = s.recv(2)
        start = time.monotonic()
        s.settimeout(a.size)
        closed = False
        try:
            closed = s.recv(10) == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
        print(json.dumps({"echoed": first.decode(errors="replace"), "closed_by_peer": closed, "after": time.monotonic() - start}))
    elif a.mode == "slowecho":
        # Sends --count chunks of 1 KiB, one every 100 ms, then half-closes and reads the echo.
        s = socks_connect(a.socks, a.source, *split(a.dest))
        s.settimeout(20)
        sent = b""
        for i in range(a.count):
            chunk = bytes([65 + i % 26]) * 1024
            s.sendall(chunk)
            sent += chunk
            time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
        print(json.dumps({"intact": got == sent, "received": len(got)}))
    elif a.mode == "loop":
        # For --size seconds: open a tunnel, echo 20 KiB of random bytes, check them, close; repeat.
        ok = failed = corrupted = 0
        errors = []
        deadline = time.monotonic() + a.size
        while time.monotonic() < deadline:
            try:
                s = socks_connect(a.socks, a.source, *split(a.dest))
                s.settimeout(10)
                msg = os.urandom(20480)
                s.sendall(msg)
                s.shutdown(socket.SHUT_WR)
                got = read_all(s)
                s.close()
                if got == msg:
                    ok += 1
                elif len(got) == len(msg):
                    corrupted += 1
                else:
                    failed += 1
                    errors.append("short echo %d" % len(got))
            except (RuntimeError, OSError) as e:
                failed += 1
                errors.append(str(e))
        print(json.dumps({"ok": ok, "failed": failed, "corrupted": corrupted, "errors": errors[:5]}))
    elif a.mode == "expect-fail":
        try:
            s = socks_connect(a.socks, a.source, *split(a.dest))
            s.settimeout(10)
            s.sendall(b"ping")
            got = s.recv(10)
            print(json.dumps({"failed": got == b"", "got": got.decode(errors="replace")}))
        except (RuntimeError, OSError) as e:
            print(json.dumps({"failed": True, "error": str(e)}))
    elif a.mode == "slow":
        # Sends `size` bytes while reading nothing for a while: the proxies must push back, not buffer it all.
        s = socks_connect(a.socks, a.source, *split(a.dest))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.setblocking(False)
        sent, data, deadline = 0, os.urandom(65536), time.monotonic() + 3
        while time.monotonic() < deadline and sent < a.size:
            try:
                sent += s.send(data)
            except BlockingIOError:
                time.sleep(0.01)
        print(json.dumps({"sent_before_stall": sent}))
        sys.stdout.flush()
        time.sleep(float(os.environ.get("SLOW_HOLD", "2")))
        s.close()
    else:
        sys.exit("unknown mode " + a.mode)

if __name__ == "__main__":
    main()
