"""Replay throughput against the in-process simulator: planning cost and replay sessions per second.

    python benchmarks/bench_replay.py                # 6 demo conversations, 3 variants, 3 repeats
    python benchmarks/bench_replay.py --short        # 2 conversations, 1 repeat (a quick check)

Records demo conversations (audio kept) through the proxy from a simulator with the seed fault profile, then
times (1) selecting and planning every out-of-band request x variants x repeats, (2) running them against a
fresh simulator in the same process, with and without recording the replays.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rtreplay.simulator.demo_app import run_demo_app
from rtreplay.analyzer.replay.run import Selection, plan_jobs, run_jobs, select
from rtreplay.analyzer.replay.plan import variants
from rtreplay.recorder.proxy import running
from rtreplay.simulator.server import serve

PROFILE = "seed-oob-forced-function"


async def record(out: Path, conversations: int) -> None:
    async with serve(seed=0, faults=PROFILE) as sim, running(sim.url, out, flush_interval=0.1) as proxy:
        await run_demo_app(proxy.url, conversations=conversations, concurrency=2)


async def replay(jobs: list, record_dir: Path | None, concurrency: int) -> float:
    async with serve(faults=PROFILE) as sim:
        start = time.perf_counter()
        await run_jobs(jobs, [sim.url] * len(jobs), record=record_dir, concurrency=concurrency)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    conversations, repeat = (2, 1) if args.short else (6, 3)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        asyncio.run(record(archive, conversations))
        start = time.perf_counter()
        jobs = plan_jobs(archive, select(archive, Selection()), variants(["tool_choice=required,auto"]), repeat)
        planned = time.perf_counter() - start
        print(f"planned {len(jobs)} replays in {planned * 1000:.0f} ms")
        for label, record_dir in (("not recorded", None), ("recorded", Path(tmp) / "replays")):
            took = asyncio.run(replay(jobs, record_dir, args.concurrency))
            print(f"{label}: {len(jobs)} replay sessions in {took:.2f} s = {len(jobs) / took:.1f} sessions/s "
                  f"(concurrency {args.concurrency})")


if __name__ == "__main__":
    main()
