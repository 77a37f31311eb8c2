#!/usr/bin/env python3
"""A TCP echo server for demos and tests: echoes every byte, half-closes when the client does.
   echo_server.py HOST PORT [--ready-file F] [--half-close-first RECORD_FILE] [--proxy-protocol RECORD_FILE]
   --proxy-protocol: each connection starts with a PROXY protocol v2 header (HAProxy's
   proxy-protocol.txt 2.2), read here independently of hbone's writer; one JSON line per
   connection says what it held (or why it was rejected), then the rest is echoed."""
import ipaddress, json, socket, struct, sys, threading

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d header bytes" % (len(data), n))
        data += chunk
    return data

def read_proxy_header(conn):
    head = read_exactly(conn, 16)
    if head[:12] != SIGNATURE:
        raise ValueError("no v2 signature: %r" % head[:12])
    ver_cmd, fam, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
    body = read_exactly(conn, length)
    out = {"version": ver_cmd >> 4, "command": ver_cmd & 0xF, "family": fam >> 4, "transport": fam & 0xF}
    if fam == 0x11:
        src, dst, sp, dp = body[0:4], body[4:8], *struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam == 0x21:
        src, dst, sp, dp = body[0:16], body[16:32], *struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        raise ValueError("family/transport 0x%02x" % fam)
    out["src"] = "%s:%d" % (ipaddress.ip_address(src), sp)
    out["dst"] = "%s:%d" % (ipaddress.ip_address(dst), dp)
    tlvs = {}
    while rest:
        if len(rest) < 3:
            raise ValueError("truncated TLV")
        t, n = rest[0], struct.unpack("!H", rest[1:3])[0]
        if len(rest) < 3 + n:
            raise ValueError("TLV 0x%02x runs past the header" % t)
        tlvs["0x%02X" % t] = rest[3:3 + n].decode("utf-8", "replace")
        rest = rest[3 + n:]
    out["tlvs"] = tlvs
    return out

def serve_proxy_protocol(conn, record):
    try:
        got = read_proxy_header(conn)
    except (ValueError, EOFError, OSError) as e:
        got = {"error": str(e)}
    with open(record, "a") as f:
        f.write(json.dumps(got) + "\n")
    if "error" in got:
        conn.close()
        return
    serve(conn)

def serve_half_close_first(conn, record):
    """Sends a greeting and half-closes first, then counts what the client still sends."""
    with conn:
        conn.sendall(b"hello, I am done talking\n")
        conn.shutdown(socket.SHUT_WR)
        total = 0
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
        with open(record, "a") as f:
            f.write("%d\n" % total)

def serve(conn):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)
        except OSError:
            pass  # a reset from the client (an aborted tunnel) ends this connection only

def main():
    host, port = sys.argv[1], int(sys.argv[2])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(512)
    if "--ready-file" in sys.argv:
        open(sys.argv[sys.argv.index("--ready-file") + 1], "w").write("ready\n")
    while True:
        conn, _ = s.accept()
        if "--proxy-protocol" in sys.argv:
            record = sys.argv[sys.argv.index("--proxy-protocol") + 1]
            threading.Thread(target=serve_proxy_protocol, args=(conn, record), daemon=True).start()
        elif "--half-close-first" in sys.argv:
            record = sys.argv[sys.argv.index("--half-close-first") + 1]
            threading.Thread(target=serve_half_close_first, args=(conn, record), daemon=True).start()
        else:
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

if __name__ == "__main__":
    main()
