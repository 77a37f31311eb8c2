#!/usr/bin/python3
"""An independent HBONE peer built on Python's ssl + h2 (python-hyper), for interop tests.

  h2_interop.py client --connect IP:PORT --cert-dir D --ca F --authority A [--method M] [--message TEXT] [--header N=V]...
                       [--optimistic together|after]
      mTLS + HTTP/2 CONNECT to an HBONE server; prints JSON {status, response_headers, echoed, peer_san}. With
      --optimistic the message and END_STREAM are sent before the answer arrives.
  h2_interop.py hold --connect IP:PORT --cert-dir D --ca F --authority A --message SECONDS --ready FILE
      opens one tunnel, writes FILE once the 200 arrived, then keeps the connection (answering PINGs)
      until the server ends it or SECONDS pass; prints JSON {status, goaway, closed, after}.
  h2_interop.py server --listen IP:PORT --cert-dir D --ca F --upstream-echo --record FILE [--refuse-first]
      an HBONE server: checks the CONNECT shape itself, answers 200, echoes DATA, records what it saw.
      --refuse-first: the first request gets GOAWAY(last_stream_id=0) unprocessed, as a draining
      server does; its connection then closes. --answer-ends: the 200 carries END_STREAM (the
      destination closed at once); DATA is taken and dropped, the client's END_STREAM recorded.

  h2_interop.py gateway --listen IP:PORT --cert-dir D --ca F --route AUTHORITY=IP:PORT... --record FILE --ready FILE
      an east-west gateway for double HBONE: terminates the outer mTLS + CONNECT, routes by the
      CONNECT's authority (a service's hostname:port) to the endpoint's HBONE port and relays the
      inner tunnel's bytes there untouched (503 for an authority it has no route for). Records
      each CONNECT's headers and the client's SAN.

h2 rejects a correct CONNECT without :path (python-hyper/h2#1247), so header validation is off
and the CONNECT shape is checked here instead."""
import argparse, json, select, socket, ssl, sys, threading
import h2.config, h2.connection, h2.events

def tls_context(server, cert_dir, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_dir + "/cert-chain.pem", cert_dir + "/key.pem")
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    return ctx

def peer_san(sock):
    cert = sock.getpeercert()
    return [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]

def h2conn(client):
    return h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=client, header_encoding="utf-8", validate_outbound_headers=False,
        validate_inbound_headers=False, normalize_outbound_headers=False, normalize_inbound_headers=False))

def client(a):
    try:
        run_client(a)
    except (ssl.SSLError, OSError) as e:
        # TLS 1.3: a server's refusal of our certificate shows on the first read.
        print(json.dumps({"status": None, "error": str(e)}))

def run_client(a):
    host, port = a.connect.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    s = tls_context(False, a.cert_dir, a.ca).wrap_socket(raw)
    result = {"alpn": s.selected_alpn_protocol(), "peer_san": peer_san(s), "status": None, "echoed": None}
    c = h2conn(True)
    c.initiate_connection()
    headers = [(":method", a.method), (":authority", a.authority)] + [tuple(h.split("=", 1)) for h in a.header]
    if a.method != "CONNECT":
        headers += [(":scheme", "https"), (":path", "/")]
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, headers, end_stream=False)
    sent = False
    if a.optimistic:
        # Optimistic data: the message and END_STREAM go before any answer, in the same TLS
        # record as the CONNECT ("together") or in a record of their own right after it ("after").
        if a.optimistic == "after":
            s.sendall(c.data_to_send())
        c.send_data(sid, a.message.encode(), end_stream=True)
        sent = True
    s.sendall(c.data_to_send())
    got, done = b"", False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                result["status"] = int(dict(ev.headers)[":status"])
                result["response_headers"] = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                                              for k, v in ev.headers if not (k.startswith(b":") if isinstance(k, bytes) else k.startswith(":"))}
                if result["status"] == 200 and not sent:
                    c.send_data(sid, a.message.encode(), end_stream=True)
                    sent = True
                elif result["status"] != 200:
                    done = True
            elif isinstance(ev, h2.events.DataReceived):
                got += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    result["echoed"] = got.decode(errors="replace") if result["status"] == 200 else None
    print(json.dumps(result))

def silent(a):
    """Completes TLS and the HTTP/2 preface, then never reads or answers again (for keepalive tests).
    Prints how long the server took to close the connection."""
    import time
    host, port = a.connect.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    s = tls_context(False, a.cert_dir, a.ca).wrap_socket(raw)
    c = h2conn(True)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    start = time.monotonic()
    time.sleep(float(a.message))          # ignore PINGs meanwhile
    s.settimeout(10)
    closed = False
    try:
        while True:
            data = s.recv(65536)          # whatever was queued (SETTINGS, PING, GOAWAY), then EOF
            if not data:
                closed = True
                break
    except (ssl.SSLError, OSError):
        closed = True
    print(json.dumps({"closed": closed, "after": time.monotonic() - start}))

def hold(a):
    import time
    host, port = a.connect.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    s = tls_context(False, a.cert_dir, a.ca).wrap_socket(raw)
    c = h2conn(True)
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "CONNECT"), (":authority", a.authority)], end_stream=False)
    s.sendall(c.data_to_send())
    result = {"status": None, "goaway": False, "closed": False, "after": None}
    deadline = time.monotonic() + float(a.message)
    start = None
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            data = b""
        if not data:
            result["closed"] = True
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                result["status"] = int(dict(ev.headers)[":status"])
                start = time.monotonic()
                open(a.ready, "w").write("ready")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                result["goaway"] = True          # no new streams; ours may go on
            elif isinstance(ev, h2.events.StreamReset):
                result["closed"] = True
        s.sendall(c.data_to_send())
        if result["closed"]:
            break
    result["after"] = time.monotonic() - start if start else None
    print(json.dumps(result))

def listen(a):
    """The listening socket and the server's TLS context, then the ready file."""
    host, port = a.listen.rsplit(":", 1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(16)
    ctx = tls_context(True, a.cert_dir, a.ca)
    open(a.ready, "w").write("ready")
    return ls, ctx

def server(a):
    a.refuse_pending = a.refuse_first
    ls, ctx = listen(a)
    while True:
        raw, _ = ls.accept()
        try:
            serve(ctx.wrap_socket(raw, server_side=True), a)
        except (ssl.SSLError, OSError) as e:
            append(a.record, {"error": str(e)})

def append(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")

def serve(s, a):
    c = h2conn(False)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    client_san = peer_san(s)
    while True:
        data = s.recv(65536)
        if not data:
            return
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived) and a.refuse_pending:
                a.refuse_pending = False
                append(a.record, {"refused": ev.stream_id})
                c.close_connection(error_code=0, last_stream_id=0)
                s.sendall(c.data_to_send())
                s.close()
                return
            if isinstance(ev, h2.events.RequestReceived):
                h = dict(ev.headers)
                ok = h.get(":method") == "CONNECT" and ":path" not in h and ":scheme" not in h and ":authority" in h
                append(a.record, {"client_san": client_san, "headers": h, "shape_ok": ok, "alpn": s.selected_alpn_protocol()})
                c.send_headers(ev.stream_id, [(":status", "200" if ok else "400")], end_stream=not ok or a.answer_ends)
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.data and not a.answer_ends:
                    c.send_data(ev.stream_id, ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                if a.answer_ends:
                    append(a.record, {"ended": ev.stream_id})
                else:
                    c.end_stream(ev.stream_id)
        s.sendall(c.data_to_send())

def gateway(a):
    routes = dict(r.split("=", 1) for r in a.route)
    ls, ctx = listen(a)
    while True:
        raw, _ = ls.accept()
        threading.Thread(target=gateway_connection, args=(ctx, raw, routes, a), daemon=True).start()

def gateway_connection(ctx, raw, routes, a):
    try:
        relay(ctx.wrap_socket(raw, server_side=True), routes, a)
    except (ssl.SSLError, OSError) as e:
        append(a.record, {"error": str(e)})

def relay(s, routes, a):
    """One outer HBONE connection: each CONNECT stream is spliced to a TCP connection to its route.
    Bytes towards the client wait for the stream's flow-control window."""
    c = h2conn(False)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    client_san = peer_san(s)
    upstream = {}   # stream id -> socket
    pending = {}    # stream id -> [bytes waiting for window, EOF seen]
    def flush(sid):
        buf, eof = pending.get(sid, (b"", False))
        while buf:
            n = min(len(buf), c.local_flow_control_window(sid), c.max_outbound_frame_size)
            if n <= 0:
                break
            c.send_data(sid, buf[:n])
            buf = buf[n:]
        pending[sid] = [buf, eof]
        if eof and not buf:
            c.end_stream(sid)
            del pending[sid]
    while True:
        readable, _, _ = select.select([s] + list(upstream.values()), [], [], 30)
        if not readable:
            return
        if s in readable:
            data = s.recv(65536)
            while s.pending():
                data += s.recv(s.pending())
            if not data:
                return
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    append(a.record, {"client_san": client_san, "headers": h})
                    target = routes.get(h.get(":authority", "")) if h.get(":method") == "CONNECT" else None
                    u = None
                    if target:
                        th, tp = target.rsplit(":", 1)
                        try:
                            u = socket.create_connection((th, int(tp)), timeout=5)
                        except OSError:
                            u = None
                    if u is None:
                        c.send_headers(ev.stream_id, [(":status", "503")], end_stream=True)
                    else:
                        upstream[ev.stream_id] = u
                        c.send_headers(ev.stream_id, [(":status", "200")])
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id in upstream and ev.data:
                        upstream[ev.stream_id].sendall(ev.data)
                elif isinstance(ev, h2.events.StreamEnded):
                    if ev.stream_id in upstream:
                        upstream[ev.stream_id].shutdown(socket.SHUT_WR)
                elif isinstance(ev, h2.events.StreamReset):
                    u = upstream.pop(ev.stream_id, None)
                    if u:
                        u.close()
                elif isinstance(ev, h2.events.WindowUpdated):
                    for sid in list(pending):
                        flush(sid)
        for sid, u in list(upstream.items()):
            if u in readable:
                data = u.recv(65536)
                entry = pending.setdefault(sid, [b"", False])
                if data:
                    entry[0] += data
                else:
                    entry[1] = True
                    del upstream[sid]
                    u.close()
                flush(sid)
        s.sendall(c.data_to_send())

def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--connect")
    p.add_argument("--listen")
    p.add_argument("--cert-dir", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--authority")
    p.add_argument("--method", default="CONNECT")
    p.add_argument("--message", default="hello from python h2")
    p.add_argument("--record")
    p.add_argument("--ready")
    p.add_argument("--refuse-first", action="store_true")
    p.add_argument("--answer-ends", action="store_true", help="server: the 200 also ends the stream (END_STREAM on the HEADERS)")
    p.add_argument("--header", action="append", default=[], help="NAME=VALUE, an extra request header (repeatable)")
    p.add_argument("--optimistic", choices=["together", "after"], help="client: send the message before the answer")
    p.add_argument("--route", action="append", default=[], help="gateway: AUTHORITY=IP:PORT (repeatable)")
    a = p.parse_args()
    {"client": client, "server": server, "silent": silent, "hold": hold, "gateway": gateway}[a.mode](a)

if __name__ == "__main__":
    main()
