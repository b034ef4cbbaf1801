"""Where the proxy's tail comes from: round trips through one path at a time (the raw relay, the relay writing
its copy to disk — the floor for any recording proxy, see bench_proxy.py —, the proxy, variants), and how long
each process of the path waited for a CPU.

`bench_proxy.py` interleaves its paths so that machine noise hits them alike; that also mixes their
after-effects. A variant that writes less to disk still pays for the kernel's writeback of the others' journals,
so disk-related variants look alike there. Here each variant runs alone (after `sync`), in turns, `--repeat`
times: one echo server, the relay or proxy, one client doing `-n` round trips. Reported per run: p50/p99/p999 of the
round trip, the recorder's CPU per round trip, and the run-queue delay per round trip of each process on the
path (client, echo server, proxy, recorder: Linux `/proc/<pid>/task/*/schedstat`), i.e. time spent runnable
but not running — what a tail is made of on a busy CPU. For which task held the CPU meanwhile, run it under
`perf sched record -g` and read `perf sched timehist -g`.

    python benchmarks/tail_probe.py --size 300 --variant before=PYTHONPATH=/tmp/old
    python benchmarks/tail_probe.py --size 300 --churn 1 8   # meanwhile an 8 MB session ends every second
"""
from __future__ import annotations

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_proxy as bench  # noqa: E402  (the same servers, frames and round trips)
from websockets.sync.client import connect  # noqa: E402


def waited_and_ran(pid: int) -> tuple[int, int]:
    """(ns spent runnable but waiting, ns on a CPU) by all threads of `pid` so far."""
    waited = ran = 0
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            on_cpu, waiting, _ = map(int, Path(task).read_text().split())
        except (FileNotFoundError, ValueError):
            continue
        ran, waited = ran + on_cpu, waited + waiting
    return waited, ran


def recorder_of(proxy_pid: int) -> int:
    for task in glob.glob(f"/proc/{proxy_pid}/task/*/children"):
        children = Path(task).read_text().split()
        if children:
            return int(children[0])
    raise RuntimeError("the proxy has no recorder process")


def churn(url: str, every: float, size_mb: int) -> None:
    """Another app's sessions, one after another: each sends `size_mb` MB of 32 KB audio appends (echoed),
    then ends — so that the recorder turns a session into Parquet every `every` seconds."""
    frame = bench.audio_frame()
    while True:
        started = time.monotonic()
        with connect(url, compression=None, max_size=None) as ws:
            bench.round_trips(ws, frame, size_mb * 32)
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def probe(name: str, env: dict[str, str], frame: str, replies: int, n: int, out: str,
          churn_args: tuple[float, int] | None = None) -> str:
    echo_port, port = bench.free_port(), bench.free_port()
    echo = bench.spawn("--serve-echo", str(echo_port))
    if name == "relay":  # the raw TCP relay: the reference, with no recorder
        proxy = bench.spawn("--serve-relay", str(port), str(echo_port))
    elif name == "relay+disk":  # the raw relay writing its copy to disk: the floor for any recording proxy
        proxy = bench.spawn("--serve-relay-disk", str(port), str(echo_port), out)
    else:
        proxy = bench.spawn("--serve-proxy", str(port), str(echo_port), out, "-", env={**env, "BENCH_NAME": name})
    try:
        bench.wait_port(echo_port)
        bench.wait_port(port)
        time.sleep(1)
        url = f"ws://127.0.0.1:{port}/v1/realtime?model=bench"
        if churn_args is not None:
            churner = subprocess.Popen([sys.executable, __file__, "--churn-worker", url, *map(str, churn_args)])
            time.sleep(churn_args[0])  # the first session has ended
        with connect(url, compression=None, max_size=None) as ws:
            bench.round_trips(ws, frame, 200, replies)  # warm up
            pids = {"client": os.getpid(), "echo": echo.pid, "proxy": proxy.pid}
            if name not in ("relay", "relay+disk"):
                pids["recorder"] = recorder_of(proxy.pid)
            before = {k: waited_and_ran(p) for k, p in pids.items()}
            times = sorted(bench.round_trips(ws, frame, n, replies))
            after = {k: waited_and_ran(p) for k, p in pids.items()}
    finally:
        if churn_args is not None:
            churner.kill()
            churner.wait()
        for proc in (proxy, echo):
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

    def us(p: float) -> str:
        return f"{times[min(len(times) - 1, int(len(times) * p))] * 1e6:,.0f}"

    def per_trip(k: str, i: int) -> str:
        return f"{(after[k][i] - before[k][i]) / n / 1000:.1f}" if k in pids else "—"

    waits = " | ".join(per_trip(k, 0) for k in ("client", "echo", "proxy", "recorder"))
    return f"| {name} | {us(0.5)} | {us(0.99)} | {us(0.999)} | {per_trip('recorder', 1)} | {waits} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["300", "32k", "audio"], default="300",
                        help="300 B or 32 KB frames echoed, or audio: a request answered by 20 audio deltas")
    parser.add_argument("-n", type=int, default=20000, help="round trips per run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE,...",
                        help="also probe a proxy started with these environment variables (repeatable)")
    parser.add_argument("--churn", type=float, nargs=2, metavar=("SECONDS", "MB"),
                        help="meanwhile, another client's sessions of MB MB each end every SECONDS")
    parser.add_argument("--churn-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.churn_worker:
        url, every, size_mb = args.churn_worker
        return churn(url, float(every), int(float(size_mb)))
    frame = {"300": bench.small_frame(), "32k": bench.audio_frame(), "audio": bench.REQUEST}[args.size]
    replies = 20 if args.size == "audio" else 1
    variants = [("relay", {}), ("relay+disk", {}), ("proxy", {})] + [bench.parse_variant(text) for text in args.variant]
    churning = f"; another client's {args.churn[1]:g} MB sessions end every {args.churn[0]:g} s" if args.churn else ""
    print(f"Round trips ({args.size}) through one path at a time ({args.n} per run{churning}; µs). "
          "Waited = run-queue delay per round trip, µs.\n")
    print("| variant | p50 | p99 | p999 | recorder CPU per round trip | waited: client | echo | proxy | recorder |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="rtreplay-tail-") as out:
        for run in range(args.repeat):
            for i, (name, env) in enumerate(variants):
                subprocess.run(["sync"], check=False)
                time.sleep(1)
                print(probe(name, env, frame, replies, args.n, f"{out}/{run}-{i}", args.churn), flush=True)


if __name__ == "__main__":
    main()
