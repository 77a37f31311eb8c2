#!/usr/bin/env python3
"""A TCP echo server for demos and tests: echoes every byte, half-closes when the client does.
   echo_server.py HOST PORT [--ready-file F]"""
import socket, sys, threading

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
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

if __name__ == "__main__":
    main()
