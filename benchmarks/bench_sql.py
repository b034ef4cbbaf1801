"""Benchmark the SQL failure-rate report (`rtreplay query ARCHIVE failure_rate`) beside `rtreplay analyze`.

    python benchmarks/bench_sql.py                       # 10M events in /tmp/rtreplay-bench-10M
    python benchmarks/bench_sql.py --events 2000000      # a short run

Uses (or generates) the same archive as benchmarks/bench_analyze.py. Each command runs in a child process,
end to end (interpreter start-up, view registration, the scan, the report, printing JSON); reported are wall
seconds, archived events per second, and whether the SQL report's (form, scope, outcome) counts equal the
generator's sidecar and `rtreplay analyze`'s. Exit 1 when a count differs.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyze import compare, generated_archive, run_analyze  # noqa: E402

OUTCOMES = ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished")


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sql_report(archive: Path) -> tuple[list[dict], float, float]:
    """The report's rows, wall seconds and CPU seconds of one `rtreplay query … failure_rate` child."""
    cmd = [sys.executable, "-c", "from rtreplay.cli import main; main()", "query", str(archive), "failure_rate",
           "--format", "json"]
    cpu, start = child_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"rtreplay query failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout), seconds, child_cpu_seconds() - cpu


def as_analyze_groups(rows: list[dict]) -> dict:
    """The SQL report's per-scope rows in the shape `compare` reads from `rtreplay analyze` JSON."""
    return {"groups": [{"form": r["form"], "split": {"scope": r["scope"]}, **{o: r[o] for o in OUTCOMES}}
                       for r in rows if r["scope"] != "all" and r["form"] != "all"]}


def main(argv: list[str] | None = None) -> int:
    archive, expected = generated_archive(argv, __doc__.split("\n\n")[0])
    events = expected["events"]
    rows, sql_seconds, sql_cpu = run_sql_report(archive)
    cpu = child_cpu_seconds()
    report, analyze_seconds = run_analyze(archive)[:2]
    analyze_cpu = child_cpu_seconds() - cpu
    sql_groups = as_analyze_groups(rows)
    diffs = compare(sql_groups, expected)
    counts = lambda rep: Counter({(g["form"], g["split"]["scope"], o): g[o]  # noqa: E731
                                  for g in rep["groups"] for o in OUTCOMES if g[o]})
    same_as_analyze = counts(sql_groups) == counts(report)
    print(f"archive: {events:,} events, {expected['requests']:,} requests ({archive})")
    for name, wall, cpu_s in (("sql failure_rate", sql_seconds, sql_cpu), ("rtreplay analyze", analyze_seconds, analyze_cpu)):
        print(f"{name}: {wall:.2f} s wall, {events / wall / 1e6:.2f} M events/s, {cpu_s:.2f} CPU s")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print("counts: " + ("SQL equals the sidecar" if not diffs else f"{len(diffs)} differ from the sidecar")
          + (" and analyze" if same_as_analyze else "; DIFFERS from analyze"))
    for d in diffs[:20]:
        print("  " + d.replace("analyze", "sql"))
    return 1 if diffs or not same_as_analyze else 0


if __name__ == "__main__":
    sys.exit(main())
