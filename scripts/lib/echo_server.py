#!/usr/bin/env python3
"""A TCP echo server for demos and tests: echoes every byte, half-closes when the client does.
   echo_server.py HOST PORT [--ready-file F] [--half-close-first RECORD_FILE] [--sink]"""
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

def serve_sink(conn):
    """Discards everything, then answers one byte (so a sender can time the whole transfer)."""
    with conn:
        while conn.recv(1 << 20):
            pass
        conn.sendall(b"k")

def serve(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            conn.sendall(data)

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
        if "--sink" in sys.argv:
            threading.Thread(target=serve_sink, args=(conn,), daemon=True).start()
        elif "--half-close-first" in sys.argv:
            record = sys.argv[sys.argv.index("--half-close-first") + 1]
            threading.Thread(target=serve_half_close_first, args=(conn, record), daemon=True).start()
        else:
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

if __name__ == "__main__":
    main()
