#!/usr/bin/python3
"""Soak load: holds --concurrency tunnels open through a SOCKS5 proxy, replacing --rate of them per
second, for --seconds; also the echo app behind the far proxy. Prints one JSON line at the end.

  soak_driver.py --socks A --source IP --dest IP:PORT --denied-port P --concurrency N --rate R --seconds S

Each tunnel: SOCKS5 CONNECT, 64 random bytes echoed, held open for N/R seconds on average, a second
echo, then closed. A share (--denied-share) goes to --denied-port, which the far side's policy
denies: those must get SOCKS5 reply 0x02. Everything else must succeed byte for byte."""
import argparse, asyncio, json, os, random, resource, socket, struct, sys, time

class Stats:
    def __init__(self):
        self.ok = self.failed = self.denied = self.denied_wrong = 0
        self.setup = []          # seconds, successful tunnels
        self.errors = {}
        self.open = 0
        self.peak = 0

    def error(self, what):
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1

async def echo_server(host, port):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, host, port, backlog=4096, reuse_address=True)

async def socks_open(a, host, port):
    sh, sp = a.socks.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((a.source, 0))
    await loop.sock_connect(s, (sh, int(sp)))
    reader, writer = await asyncio.open_connection(sock=s)
    writer.write(b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", port))
    greeting = await reader.readexactly(2)
    if greeting != b"\x05\x00":
        raise RuntimeError("greeting")
    reply = await reader.readexactly(10)
    return reader, writer, reply[1]

async def roundtrip(reader, writer):
    msg = os.urandom(64)
    writer.write(msg)
    await writer.drain()
    got = await reader.readexactly(64)
    return got == msg

async def tunnel(a, st, host, port, hold, deny):
    start = time.monotonic()
    writer = None
    st.open += 1
    st.peak = max(st.peak, st.open)
    try:
        reader, writer, code = await asyncio.wait_for(socks_open(a, host, a.denied_port if deny else port), 20)
        if deny:
            if code == 2:
                st.denied += 1
            else:
                st.denied_wrong += 1
            return
        if code != 0:
            st.error("socks reply %d" % code)
            return
        if not await asyncio.wait_for(roundtrip(reader, writer), 20):
            st.error("corrupted echo")
            return
        st.setup.append(time.monotonic() - start)
        await asyncio.sleep(hold)
        if not await asyncio.wait_for(roundtrip(reader, writer), 20):
            st.error("corrupted echo after hold")
            return
        st.ok += 1
    except asyncio.IncompleteReadError:
        st.error("EOF")
    except asyncio.TimeoutError:
        st.error("timeout")
    except (ConnectionError, OSError, RuntimeError) as e:
        st.error(type(e).__name__)
    finally:
        st.open -= 1
        if writer is not None:
            writer.close()

async def main(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = a.dest.rsplit(":", 1)
    port = int(port)
    server = await echo_server(host, port)
    st = Stats()
    tasks = set()
    mean_hold = a.concurrency / a.rate
    begin = time.monotonic()
    # Ramp up to the target concurrency, then replace `rate` tunnels per second.
    next_report = begin + 10
    while time.monotonic() - begin < a.seconds:
        tick = time.monotonic()
        want = a.rate / 10 if st.open >= a.concurrency * 0.9 else max(a.rate / 10, (a.concurrency - st.open) / 10)
        for _ in range(int(want)):
            hold = random.uniform(0.5 * mean_hold, 1.5 * mean_hold)
            t = asyncio.ensure_future(tunnel(a, st, host, port, hold, random.random() < a.denied_share))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if time.monotonic() >= next_report:
            next_report += 10
            print(json.dumps({"t": round(time.monotonic() - begin), "open": st.open, "ok": st.ok, "failed": st.failed,
                              "denied": st.denied, "errors": st.errors}), file=sys.stderr, flush=True)
        await asyncio.sleep(max(0, 0.1 - (time.monotonic() - tick)))
    await asyncio.gather(*tasks, return_exceptions=True)
    server.close()
    st.setup.sort()
    p = lambda q: round(st.setup[min(len(st.setup) - 1, int(q * len(st.setup)))] * 1000, 2) if st.setup else None
    print(json.dumps({"ok": st.ok, "failed": st.failed, "denied": st.denied, "denied_but_not_refused": st.denied_wrong,
                      "errors": st.errors, "peak_open": st.peak, "setup_ms_p50": p(0.5), "setup_ms_p99": p(0.99),
                      "seconds": round(time.monotonic() - begin, 1)}))

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--socks", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--denied-port", type=int, required=True)
    ap.add_argument("--denied-share", type=float, default=0.02)
    ap.add_argument("--concurrency", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=600)
    asyncio.run(main(ap.parse_args()))
