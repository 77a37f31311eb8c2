#!/usr/bin/env python3
"""Sends a message through a SOCKS5 proxy from a chosen source IP and prints what came back.
   socks_client.py --socks HOST:PORT --source IP --dest IP:PORT --message TEXT"""
import argparse, socket, struct, sys, time

def socks_connect(proxy, source, dest_host, dest_port, timeout=10):
    host, port = proxy.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((host, int(port)))
    s.sendall(b"\x05\x01\x00")
    if s.recv(2) != b"\x05\x00":
        raise RuntimeError("SOCKS5 method negotiation failed")
    try:
        addr = b"\x01" + socket.inet_aton(dest_host)
    except OSError:
        addr = b"\x03" + bytes([len(dest_host)]) + dest_host.encode()
    s.sendall(b"\x05\x01\x00" + addr + struct.pack(">H", dest_port))
    reply = b""
    while len(reply) < 10:
        chunk = s.recv(10 - len(reply))
        if not chunk:
            raise RuntimeError("proxy closed during SOCKS5 reply")
        reply += chunk
    if reply[1] != 0:
        raise RuntimeError("SOCKS5 CONNECT refused, reply code %d" % reply[1])
    return s

def read_all(s):
    """Reads until the peer's FIN; returns everything received."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socks", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--message", required=True)
    a = p.parse_args()
    host, port = a.dest.rsplit(":", 1)
    start = time.monotonic()
    s = socks_connect(a.socks, a.source, host, int(port))
    payload = a.message.encode()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = read_all(s)
    rtt = (time.monotonic() - start) * 1000
    print("sent:     %r" % a.message)
    print("received: %r" % got.decode(errors="replace"))
    print("round trip (connect + echo + close): %.2f ms" % rtt)
    sys.exit(0 if got == payload else 1)

if __name__ == "__main__":
    main()
