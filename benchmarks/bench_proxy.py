"""Proxy overhead, side by side: direct connection vs a raw TCP relay vs the rtreplay proxy (audio kept).

Four paths to one websockets echo server (its own process), each path in its own process, measured in
interleaved rounds (the order shuffled every round) so that machine noise hits them alike. The fourth,
"relay+disk", is the raw relay writing a copy of every chunk it forwards to a file (fsync'd every 0.25 s, as
the recorder's journals are): the least any proxy that records its traffic must do, so its figures are the
floor for the proxy's on this machine.
  - latency: p50/p99 round trip of 300 B frames, 32 KB frames, and a 1-request-to-20-replies audio
    stream (time to the 20th reply);
  - throughput: MB/s of echoed 32 KB frames with 1, 8 and 32 connections (4 frames in flight each).
Compression is off on every path (the cost measured is the relay's, not zlib's).

    python benchmarks/bench_proxy.py            # short run (< 60 s)
    python benchmarks/bench_proxy.py --long     # 5x the rounds
    python benchmarks/bench_proxy.py --profile proxy.prof   # also cProfile the proxy process (not its
                                                            # recorder child: use py-spy record -p on that)
    python benchmarks/bench_proxy.py --variant before=PYTHONPATH=/tmp/old   # A/B: one more proxy, started
                                 # with these environment variables, interleaved with the rest (repeatable)
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.sync.client import connect as sync_connect

SMALL = '{"type":"conversation.item.create","event_id":"evt_%s","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"%s"}]}}'
REQUEST = '{"type":"response.create","event_id":"evt_req"}'
DELTA = '{"type":"response.output_audio.delta","event_id":"event_x","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"%s"}' % base64.b64encode(os.urandom(3600)).decode()


def small_frame() -> str:
    text = SMALL % ("a" * 21, "x")
    return SMALL % ("a" * 21, "x" * (300 - len(text) + 1))


def audio_frame(size: int = 32 * 1024) -> str:
    head = '{"type":"input_audio_buffer.append","event_id":"evt_a","audio":"'
    raw = (size - len(head) - 2) * 3 // 4
    return head + base64.b64encode(os.urandom(raw)).decode() + '"}'


# -- servers (each run in its own process) ----------------------------------------------------------

async def serve_echo(port: int) -> None:
    logging.getLogger("websockets.server").disabled = True  # readiness probes are not handshakes
    async def handler(ws) -> None:
        async for message in ws:
            if message == REQUEST:
                for _ in range(20):
                    await ws.send(DELTA)
            else:
                await ws.send(message)

    async with serve(handler, "127.0.0.1", port, max_size=None, compression=None):
        await asyncio.Future()


class _Relay(asyncio.Protocol):
    """The minimal raw TCP relay: bytes in, same bytes out, with write-buffer backpressure; `copy`, if
    given, also takes every chunk (relay+disk)."""

    def __init__(self, peer: _Relay | None = None, copy=None) -> None:
        self.peer, self.transport, self.copy = peer, None, copy

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.peer.transport.write(data)
        if self.copy is not None:
            self.copy(data)

    def connection_lost(self, exc) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()


class _DiskCopy:
    """relay+disk's copy: every chunk appended to a file in the relay's thread (the page cache takes it),
    fsync'd every 0.25 s by another thread; past 1 GiB (once fsync'd) a fresh file replaces it, so that a
    long run does not fill the disk."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "relay-copy.bin")
        self.fd = self._open()
        self.lock = threading.Lock()
        threading.Thread(target=self._sync, daemon=True).start()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)

    def __call__(self, data: bytes) -> None:
        with self.lock:
            os.write(self.fd, data)

    def _sync(self) -> None:
        while True:
            time.sleep(0.25)
            fd = self.fd
            os.fsync(fd)
            if os.fstat(fd).st_size > 1 << 30:
                with self.lock:
                    self.fd = self._open()
                os.close(fd)


async def serve_relay(port: int, upstream: int, folder: str | None = None) -> None:
    """The raw relay; with `folder`, relay+disk."""
    loop = asyncio.get_running_loop()
    copy = _DiskCopy(folder) if folder else None

    class Accepted(_Relay):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            transport.pause_reading()
            loop.create_task(self.dial())

        async def dial(self) -> None:
            _, self.peer = await loop.create_connection(lambda: _Relay(self, copy), "127.0.0.1", upstream)
            self.transport.resume_reading()

    await loop.create_server(lambda: Accepted(None, copy), "127.0.0.1", port)
    await asyncio.Future()


async def serve_proxy(port: int, upstream: int, out: str, profile: str | None) -> None:
    from rtreplay.recorder.proxy import running

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    async with running(f"ws://127.0.0.1:{upstream}", Path(out), listen=f"127.0.0.1:{port}", audio="keep") as proxy:
        await stop.wait()
        link = proxy.writer
        print(f"{os.environ.get('BENCH_NAME', 'proxy')}: paused every session {link.pauses} times and one session "
              f"{getattr(link, 'session_pauses', 0)} times for the recorder, peak "
              f"{link.peak_queued_bytes / 1e6:.1f} MB buffered for it", file=sys.stderr)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)


# -- measuring ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.025)
    raise RuntimeError(f"nothing listening on {port}")


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], env={**os.environ, **(env or {})})


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`NAME=KEY=VALUE[,KEY=VALUE…]`: a proxy named `proxy NAME`, its processes run with those variables."""
    name, _, assignments = text.partition("=")
    return f"proxy {name}", dict(a.split("=", 1) for a in assignments.split(",") if a)


def round_trips(ws, message: str, n: int, replies: int = 1) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        ws.send(message)
        for _ in range(replies):
            ws.recv()
        times.append(time.perf_counter() - start)
    return times


async def throughput(url: str, connections: int, seconds: float, frame: str, moved: list[int] | None = None
                     ) -> float:
    """MB/s of echoed frames, each connection keeping 4 frames in flight (bytes echoed added to `moved[0]`)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done
        async with connect(url, max_size=None, compression=None) as ws:
            for _ in range(4):
                await ws.send(frame)
            while time.perf_counter() < deadline:
                await ws.recv()
                done += 1
                await ws.send(frame)
            for _ in range(4):
                await ws.recv()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    if moved is not None:
        moved[0] += done * len(frame)
    return done * len(frame) / (time.perf_counter() - start) / 1e6


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of process `pid` and its children, living or reaped (Linux /proc; 0 elsewhere)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        children = [int(c) for t in os.listdir(f"/proc/{pid}/task")
                    for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return own + sum(tree_cpu(c) for c in children)


def stop(proc: subprocess.Popen) -> float:
    """SIGTERM `proc`, wait (15 s, then kill) and return its CPU seconds, its reaped children's included."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help="5x the rounds")
    parser.add_argument("--profile", help="write a cProfile of the proxy process here")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE,...",
                        help="also measure a proxy started with these environment variables (repeatable)")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay-disk", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        return asyncio.run(serve_echo(args.serve_echo))
    if args.serve_relay:
        return asyncio.run(serve_relay(*args.serve_relay))
    if args.serve_relay_disk:
        port, upstream, folder = args.serve_relay_disk
        return asyncio.run(serve_relay(int(port), int(upstream), folder))
    if args.serve_proxy:
        port, upstream, out, profile = args.serve_proxy
        return asyncio.run(serve_proxy(int(port), int(upstream), out, profile if profile != "-" else None))

    rounds = 25 if args.long else 5
    echo_port, relay_port, disk_port, proxy_port = free_port(), free_port(), free_port(), free_port()
    out = tempfile.mkdtemp(prefix="rtreplay-bench-")
    procs = [spawn("--serve-echo", str(echo_port)),
             spawn("--serve-relay", str(relay_port), str(echo_port)),
             spawn("--serve-relay-disk", str(disk_port), str(echo_port), f"{out}/relay+disk"),
             spawn("--serve-proxy", str(proxy_port), str(echo_port), out, args.profile or "-")]
    ports = {"direct": echo_port, "relay": relay_port, "relay+disk": disk_port, "proxy": proxy_port}
    for i, text in enumerate(args.variant):
        name, env = parse_variant(text)
        ports[name] = free_port()
        procs.append(spawn("--serve-proxy", str(ports[name]), str(echo_port), f"{out}/{i}", "-",
                           env={**env, "BENCH_NAME": name}))
    servers = dict(zip(list(ports)[1:], procs[1:]))
    try:
        for port in ports.values():
            wait_port(port)
        urls = {p: f"ws://127.0.0.1:{port}/v1/realtime" + ("?model=bench" if p.startswith("proxy") else "")
                for p, port in ports.items()}
        scenarios = {"300 B": (small_frame(), 200, 1), "32 KB": (audio_frame(), 100, 1), "1 -> 20 audio": (REQUEST, 40, 20)}
        latency = {(p, s): [] for p in urls for s in scenarios}
        conns = {p: sync_connect(u, max_size=None, compression=None) for p, u in urls.items()}
        for p, ws in conns.items():  # warm up
            round_trips(ws, small_frame(), 50)
        for _ in range(rounds):
            for path in random.sample(list(urls), len(urls)):
                for name, (message, n, replies) in scenarios.items():
                    latency[(path, name)] += round_trips(conns[path], message, n, replies)
        for ws in conns.values():
            ws.close()
        rates = {(p, c): [] for p in urls for c in (1, 8, 32)}
        frame = audio_frame()
        cpu_before = {p: tree_cpu(proc.pid) for p, proc in servers.items()}
        moved = {p: [0] for p in urls}
        for _ in range(max(1, rounds // 2)):
            for c in (1, 8, 32):
                for path in random.sample(list(urls), len(urls)):
                    rates[(path, c)].append(asyncio.run(throughput(urls[path], c, 1.0, frame, moved[path])))
    finally:
        cpu = {p: stop(proc) for p, proc in reversed(list(zip(["echo", *servers], procs)))}
        shutil.rmtree(out, ignore_errors=True)
    report(latency, rates, scenarios, rounds, [p for p in urls if p not in ("direct", "relay")])
    if cpu_before["relay"]:
        print("\nCPU of each relaying process tree in the throughput phase (the proxy's includes its recorder, up to "
              "its exit: every session finalized), seconds per GB echoed\n")
        print("| path | CPU s | GB echoed | CPU s per GB |\n|---|---|---|---|")
        for p in servers:
            used, gb = cpu[p] - cpu_before[p], moved[p][0] / 1e9
            print(f"| {p} | {used:.2f} | {gb:.2f} | {used / gb:.2f} |")


def ratio(proxy_added: float, relay_added: float) -> str:
    return f"{proxy_added / relay_added:.2f}x" if relay_added > 0 else "n/a (relay within noise of direct)"


def report(latency, rates, scenarios, rounds, proxies) -> None:
    """`proxies`: every path compared with the relay (relay+disk, the proxy, its variants)."""
    us = 1e6
    print(f"\nLatency (µs, {rounds} interleaved rounds; 'added' = over direct; RTT ratio = proxy / relay round "
          "trip, the goal's measure)\n")
    print("| frames | direct p50 | relay p50 | proxy p50 | RTT ratio p50 | relay added p50 | proxy added p50 "
          "| direct p99 | relay p99 | proxy p99 | RTT ratio p99 | relay added p99 | proxy added p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in scenarios:
        for proxy in proxies:
            label = name if proxy == "proxy" else f"{name} ({proxy})"
            d50, r50, p50 = (pct(latency[(p, name)], 0.5) * us for p in ("direct", "relay", proxy))
            d99, r99, p99 = (pct(latency[(p, name)], 0.99) * us for p in ("direct", "relay", proxy))
            print(f"| {label} | {d50:.0f} | {r50:.0f} | {p50:.0f} | {p50 / r50:.2f}x | {r50 - d50:.0f} "
                  f"| {p50 - d50:.0f} | {d99:.0f} | {r99:.0f} | {p99:.0f} | {p99 / r99:.2f}x | {r99 - d99:.0f} "
                  f"| {p99 - d99:.0f} |")
    print("\nThroughput (MB/s of echoed 32 KB frames, median of rounds)\n")
    print("| connections | direct | relay | " + " | ".join(proxies) + " | "
          + " | ".join(f"{p} / relay" for p in proxies) + " |")
    print("|---|---|---|" + "---|" * (2 * len(proxies)))
    for c in (1, 8, 32):
        d, r = (statistics.median(rates[(path, c)]) for path in ("direct", "relay"))
        ps = [statistics.median(rates[(p, c)]) for p in proxies]
        print(f"| {c} | {d:.0f} | {r:.0f} | " + " | ".join(f"{p:.0f}" for p in ps) + " | "
              + " | ".join(f"{p / r:.2f}x" for p in ps) + " |")


if __name__ == "__main__":
    main()
