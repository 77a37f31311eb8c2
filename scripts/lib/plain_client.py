#!/usr/bin/env python3
"""An unmodified TCP client: connects to --dest from --source, sends --message, half-closes,
prints JSON {echoed} or {error}. --mark sets SO_MARK (root) to bypass capture rules."""
import argparse, json, os, socket, sys
sys.path.insert(0, os.path.dirname(__file__))
from socks_client import read_all
p = argparse.ArgumentParser()
p.add_argument("--source", required=True)
p.add_argument("--dest", required=True)
p.add_argument("--message", default="hello through capture")
p.add_argument("--mark", type=int)
a = p.parse_args()
host, port = a.dest.rsplit(":", 1)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if a.mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, a.mark)
    s.settimeout(10)
    s.bind((a.source, 0))
    s.connect((host, int(port)))
    s.sendall(a.message.encode())
    s.shutdown(socket.SHUT_WR)
    got = read_all(s)
    print(json.dumps({"echoed": got.decode(errors="replace")}))
except OSError as e:
    print(json.dumps({"error": str(e)}))
