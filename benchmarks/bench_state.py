"""State rebuild benchmark: throughput over a generated archive, and `state_at` at the end of a 60-minute session.

    python benchmarks/bench_state.py --events 1000000 [--archive /tmp/bench-state]

Generates the archive with benchmarks/generate_archive.py unless it exists. Reports, in archived rows per
second: end to end (read Parquet + build events + fold), and the fold alone; then for the 60-minute session
(the generator's first): `state_at(last seq)` cold (one fold from the start) and warm (`History`: nearest
snapshot + the rest), and request matching over the whole archive.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_archive  # noqa: E402

from analyzer import load  # noqa: E402
from analyzer.match import requests  # noqa: E402
from analyzer.timeline import History, rebuild, state_at  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--archive", type=Path, default=None)
    args = ap.parse_args(argv)
    root = args.archive or Path(f"/tmp/rtreplay-bench-state-{args.events}")
    if not generate_archive.sidecar_path(root).exists():
        generate_archive.generate(root, args.events)
    rows = total = fold_s = fold_cpu = 0.0
    first = None
    t0, c0 = time.perf_counter(), time.process_time()
    for sid, table in load.iter_sessions(root):
        events = load.session_events(table)
        t, c = time.perf_counter(), time.process_time()
        rebuild(events, sid)
        fold_s += time.perf_counter() - t
        fold_cpu += time.process_time() - c
        rows += table.num_rows
        if first is None:
            first = (sid, table.num_rows, events)
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"rebuild: {rows:.0f} rows; end to end {rows / total:,.0f} rows/s wall ({rows / total_cpu:,.0f} per CPU s); "
          f"fold alone {rows / fold_s:,.0f} rows/s wall ({rows / fold_cpu:,.0f} per CPU s)")
    sid, n, events = first  # type: ignore[misc]
    last = events[-1].seq
    t, c = time.perf_counter(), time.process_time()
    state_at(events, last, sid)
    cold, cold_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    history = History(events, sid)
    build = time.perf_counter() - t
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        history.state_at(last)
        warm.append(time.perf_counter() - t)
    minutes = (events[-1].mono_ns - events[0].mono_ns) / 60e9
    print(f"state_at(last) of a {minutes:.0f}-minute session ({n} rows): cold {cold * 1000:.0f} ms ({cold_cpu * 1000:.0f} ms CPU); "
          f"History built in {build:.2f}s, then {min(warm) * 1000:.0f} ms (best of 5)")
    t = time.perf_counter()
    reqs = requests(root)
    print(f"match: {len(reqs)} requests in {time.perf_counter() - t:.2f}s")


if __name__ == "__main__":
    main()
