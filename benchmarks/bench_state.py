"""State rebuild benchmark: throughput over a generated archive, and `state_at` at the end of a 60-minute session.

    python benchmarks/bench_state.py --events 1000000 [--archive /tmp/bench-state] [--repeat 3]

Generates the archive with benchmarks/generate_archive.py unless it exists. Each figure is taken `--repeat`
times; the best and the median are printed (the machine is shared: wall time varies, so CPU time is beside it).
- rebuild, end to end: read every session's Parquet (`load.iter_sessions`), build its events
  (`load.session_events`: runs of appends and deltas coalesced) and fold them (`timeline.rebuild`), in
  archived rows per second; and the fold alone (same rows, only the `rebuild` time counted).
- `state_at(last seq)` of the 60-minute session (the generator's first), cold: the session's events already
  in memory as `session_events` returns them (columns read, runs built, payloads *not* parsed yet — a fresh
  list each time, nothing cached), timed: one fold from the first event, parsing every payload it reads.
  From disk: `read_session` + `session_events` + `state_at`, what `rtreplay state --at` waits for.
  Warm: `History` (a snapshot every 2048 events, built once), then `History.state_at`.
- request matching over the whole archive (`match.requests`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_archive  # noqa: E402

from rtreplay.analyzer.state import load  # noqa: E402
from rtreplay.analyzer.state.match import requests  # noqa: E402
from rtreplay.analyzer.state.timeline import History, rebuild, state_at  # noqa: E402


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def best_median(values: list[float], *, rate: bool = False) -> str:
    """Best (highest rate or lowest time) and median of repeated figures."""
    return f"best {max(values) if rate else min(values):,.0f}, median {statistics.median(values):,.0f}"


def rebuild_pass(root: Path) -> tuple[int, float, float, float, float]:
    """(rows, end-to-end wall, end-to-end CPU, fold wall, fold CPU) of one pass over the archive."""
    rows = 0
    fold_s = fold_cpu = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for sid, table in load.iter_sessions(root):
        events = load.session_events(table)
        wall, cpu = timed(lambda: rebuild(events, sid))
        fold_s, fold_cpu, rows = fold_s + wall, fold_cpu + cpu, rows + table.num_rows
    return rows, time.perf_counter() - t0, time.process_time() - c0, fold_s, fold_cpu


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--archive", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    root = args.archive or Path(f"/tmp/rtreplay-bench-state-{args.events}")
    if not generate_archive.sidecar_path(root).exists():
        generate_archive.generate(root, args.events)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")

    passes = [rebuild_pass(root) for _ in range(args.repeat)]
    rows = passes[0][0]
    for label, wall, cpu in (("end to end", 1, 2), ("fold alone", 3, 4)):
        print(f"rebuild of {rows} rows, {label}, rows/s: {best_median([rows / p[wall] for p in passes], rate=True)} "
              f"wall ({best_median([rows / p[cpu] for p in passes], rate=True)} per CPU s)")

    sid, table = next(load.iter_sessions(root))
    events = load.session_events(table)
    last = events[-1].seq
    minutes = (events[-1].mono_ns - events[0].mono_ns) / 60e9
    cold = []
    for _ in range(max(args.repeat, 5)):
        fresh = load.session_events(table)
        cold.append(timed(lambda: state_at(fresh, last, sid)))
    disk = [timed(lambda: state_at(load.session_events(load.read_session(root, sid)), last, sid))
            for _ in range(args.repeat)]
    t = time.perf_counter()
    history = History(events, sid)
    build = time.perf_counter() - t
    warm = [timed(lambda: history.state_at(last))[0] for _ in range(5)]
    print(f"state_at(last) of a {minutes:.0f}-minute session ({table.num_rows} rows, {len(events)} events), ms: "
          f"cold {best_median([1000 * w for w, _ in cold])} wall ({best_median([1000 * c for _, c in cold])} CPU); "
          f"from disk {best_median([1000 * w for w, _ in disk])} wall; "
          f"warm (History built in {build:.2f}s) {best_median([1000 * w for w in warm])}")

    t = time.perf_counter()
    reqs = requests(root)
    print(f"match: {len(reqs)} requests in {time.perf_counter() - t:.2f}s")


if __name__ == "__main__":
    main()
