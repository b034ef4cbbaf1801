"""Benchmark `rtreplay analyze` end to end over a generated archive, and check its counts.

    python benchmarks/bench_analyze.py                       # 10M events in /tmp/rtreplay-bench-10M
    python benchmarks/bench_analyze.py --events 1000000      # a short run

Generates the archive with benchmarks/generate_archive.py unless it exists already (the sidecar
`<archive>.expected.json` holds the true counts), runs `rtreplay analyze ARCHIVE --format json` in a child
process (interpreter start-up, reading, matching, the report and printing all count), and reports archived
events per second, the child's peak RSS and whether every (form, scope, outcome) count equals the sidecar's.
Exit 1 when a count differs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "generate_archive.py"
TARGET = 1_000_000  # archived events per second, end to end


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run_analyze(archive: Path) -> tuple[dict, float, int, float]:
    """The JSON report, wall seconds, peak RSS (bytes) and CPU seconds of one `rtreplay analyze` child."""
    cmd = [sys.executable, "-c", "from rtreplay.cli import main; main()", "analyze", str(archive),
           "--format", "json", "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"analyze failed ({proc.returncode}): {proc.stderr.strip()}")
    # Linux: KiB, the largest child so far. A child's figure includes what it inherited at fork, so this
    # process stays small: the archive is generated in a child of its own, and nothing heavy is imported.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return json.loads(proc.stdout), seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def compare(report: dict, expected: dict) -> list[str]:
    """Differences between the report's (form, scope, outcome) counts and the sidecar's."""
    want = Counter({(c["form_sent"], c["scope"], c["outcome"]): c["n"] for c in expected["counts"]})
    got: Counter = Counter()
    for g in report["groups"]:
        for outcome in ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished"):
            if g[outcome]:
                got[(g["form"], g["split"]["scope"], outcome)] = g[outcome]
    return [f"{k}: analyze {got[k]}, expected {want[k]}" for k in sorted(set(want) | set(got)) if got[k] != want[k]]


def generated_archive(argv: list[str] | None, description: str) -> tuple[Path, dict]:
    """The benchmark archive named by the command line (generated on first use) and its expected counts."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--archive", type=Path, help="archive root (default /tmp/rtreplay-bench-<N>)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    archive = args.archive or Path(f"/tmp/rtreplay-bench-{args.events // 1_000_000 or args.events}"
                                   f"{'M' if args.events >= 1_000_000 else ''}")
    sidecar = archive.with_name(archive.name + ".expected.json")  # where generate_archive.py puts it
    if not sidecar.exists():
        print(f"generating {args.events} events into {archive} …", file=sys.stderr)
        subprocess.run([sys.executable, str(GENERATOR), "--events", str(args.events), "--out", str(archive),
                        "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL)
    return archive, json.loads(sidecar.read_text())


def main(argv: list[str] | None = None) -> int:
    archive, expected = generated_archive(argv, __doc__.split("\n\n")[0])
    report, seconds, peak, cpu = run_analyze(archive)
    events = expected["events"]
    rate = events / seconds
    diffs = compare(report, expected)
    print(f"archive: {events:,} events, {expected['requests']:,} requests, {expected['sessions']} sessions, "
          f"{disk_bytes(archive) / 2**20:.0f} MiB on disk ({archive})")
    print(f"analyze: {seconds:.2f} s wall, {rate / 1e6:.2f} M events/s (target {TARGET / 1e6:.0f} M/s: "
          f"{'met' if rate >= TARGET else 'NOT met'}), {cpu:.2f} CPU s ({events / cpu / 1e6:.2f} M events per "
          f"CPU-second), peak RSS {peak / 2**20:.0f} MiB, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print("counts: " + ("all equal to the generator's sidecar" if not diffs else f"{len(diffs)} differ"))
    for d in diffs[:20]:
        print("  " + d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
