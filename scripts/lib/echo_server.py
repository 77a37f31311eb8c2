#!/usr/bin/env python3
"""A TCP echo server for demos and tests: echoes every byte, half-closes when the client does.
   echo_server.py HOST PORT [--ready-file F] [--half-close-first RECORD_FILE]"""
import socket, sys, threading

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
        if "--half-close-first" in sys.argv:
            record = sys.argv[sys.argv.index("--half-close-first") + 1]
            threading.Thread(target=serve_half_close_first, args=(conn, record), daemon=True).start()
        else:
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

if __name__ == "__main__":
    main()
