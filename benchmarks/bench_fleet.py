"""Fleet-scale reading (issue 19): `analyze --jobs 1` vs `--jobs 2`, Spark vs local, and compaction.

    python benchmarks/bench_fleet.py                          # 10M events in /tmp/rtreplay-bench-10M
    python benchmarks/bench_fleet.py --events 2000000 --skip-spark

1. jobs: `rtreplay analyze ARCHIVE --format json --jobs N` children for N = 1, 2, interleaved `--repeat`
   times so machine load affects both alike; wall and CPU seconds (the pool's workers included); the
   outputs must be byte-identical.
2. Spark: `rtreplay.spark.report_json` on a local[2] Spark session (JVM start included, then a second, warm
   run) vs `analyze --jobs 2`; the reports must be equal.
3. compaction: an archive of many short sessions (`--small-events`, 2-minute sessions), `analyze` and
   `query failure_rate` timed before and after `rtreplay compact` of its days, outputs equal; with `--s3`
   the same on a bucket of a local S3-compatible server (moto on 127.0.0.1).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "generate_archive.py"
RTREPLAY = [sys.executable, "-c", "from rtreplay.cli import main; main()"]


def ensure(archive: Path, events: int, minutes: float) -> None:
    if not (archive / "events").is_dir():
        subprocess.run([sys.executable, str(GENERATOR), "--events", str(events), "--out", str(archive),
                        "--minutes", str(minutes)], check=True)


def timed(*args: str) -> tuple[str, float, float]:
    """stdout, wall seconds and CPU seconds (children included) of one rtreplay command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(RTREPLAY + list(args), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{args} failed: {proc.stderr.strip()}")
    return proc.stdout, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def bench_jobs(archive: Path, repeat: int) -> str:
    rows, outputs = [], {}
    for i in range(repeat):
        for jobs in (1, 2):
            out, wall, cpu = timed("analyze", str(archive), "--format", "json", "--no-progress", "--jobs", str(jobs))
            outputs.setdefault(jobs, out)
            assert out == outputs[jobs] == outputs[1], "reports differ between job counts"
            rows.append(f"| --jobs {jobs} (run {i + 1}) | {wall:.2f} s | {cpu:.2f} s |")
    return "\n".join(["| run | wall | CPU (all processes) |", "|---|---|---|", *rows])


def bench_spark(archive: Path) -> str:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from rtreplay import spark as rtspark

    local, wall_local, cpu_local = timed("analyze", str(archive), "--format", "json", "--no-progress", "--jobs", "2")
    start = time.perf_counter()
    session = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
               .config("spark.driver.memory", "2g").config("spark.sql.shuffle.partitions", "8").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    up = time.perf_counter() - start
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        got = rtspark.report_json(session, str(archive))
        runs.append(time.perf_counter() - start)
        assert got == local, "Spark and local reports differ"
    session.stop()
    return "\n".join([
        "| engine | wall |", "|---|---|",
        f"| local `analyze --jobs 2` (child, end to end) | {wall_local:.2f} s (CPU {cpu_local:.2f} s) |",
        f"| Spark local[2]: session start (JVM) | {up:.2f} s |",
        f"| Spark local[2]: `report_json`, first run | {runs[0]:.2f} s |",
        f"| Spark local[2]: `report_json`, second run | {runs[1]:.2f} s |",
        "", "Reports equal: yes (byte for byte, both runs)."])


def bench_compact(archive: Path, repeat: int) -> str:
    work = archive.with_name(archive.name + "-compacted")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(archive, work)
    days = sorted(p.name.removeprefix("date=") for p in (work / "events").iterdir())
    files_before = len(list((work / "events").rglob("*.parquet")))
    commands = [("analyze", "--format", "json", "--no-progress", "--jobs", "1"), ("query", "failure_rate")]
    before = {c: [timed(c[0], str(work), *c[1:]) for _ in range(repeat)] for c in commands}
    start = time.perf_counter()
    for day in days:
        timed("compact", str(work), "--day", day)
    took = time.perf_counter() - start
    files_after = len(list((work / "events").rglob("*.parquet")))
    after = {c: [timed(c[0], str(work), *c[1:]) for _ in range(repeat)] for c in commands}
    rows = []
    for c in commands:
        assert {o for o, _, _ in before[c]} == {o for o, _, _ in after[c]}, f"{c} differs after compaction"
        b, a = min(w for _, w, _ in before[c]), min(w for _, w, _ in after[c])
        rows.append(f"| `{' '.join(c[:1] + c[1:3])}` | {b:.2f} s | {a:.2f} s | {b / a:.2f}× |")
    shutil.rmtree(work)
    return "\n".join([f"{files_before} files → {files_after} in {took:.1f} s (`rtreplay compact`, {len(days)} day(s)).",
                      "", "| command (best of runs) | before | after | speed-up |", "|---|---|---|---|", *rows,
                      "", "Outputs equal before and after: yes."])


def bench_compact_s3(small: Path, repeat: int) -> str:
    """The same compaction, on a bucket of a local S3-compatible server (moto, as the tests start it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import s3_support

    with s3_support.s3_server():
        url = s3_support.make_bucket("bench") + "/logs"
        s3_support.upload_tree(str(small), url)
        commands = [("analyze", "--format", "json", "--no-progress", "--jobs", "1"), ("query", "failure_rate")]
        before = {c: [timed(c[0], url, *c[1:]) for _ in range(repeat)] for c in commands}
        start = time.perf_counter()
        for day in sorted(p.name.removeprefix("date=") for p in (small / "events").iterdir()):
            timed("compact", url, "--day", day)
        took = time.perf_counter() - start
        after = {c: [timed(c[0], url, *c[1:]) for _ in range(repeat)] for c in commands}
    rows = []
    for c in commands:
        assert {o for o, _, _ in before[c]} == {o for o, _, _ in after[c]}, f"{c} differs after compaction"
        b, a = min(w for _, w, _ in before[c]), min(w for _, w, _ in after[c])
        rows.append(f"| `{c[0]}` on s3:// | {b:.2f} s | {a:.2f} s | {b / a:.2f}× |")
    return "\n".join([f"`rtreplay compact` on the bucket: {took:.1f} s.", "",
                      "| command (best of runs) | before | after | speed-up |", "|---|---|---|---|", *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--archive", type=Path)
    ap.add_argument("--small-events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--s3", action="store_true", help="also compaction on a local S3 server (needs moto[server])")
    args = ap.parse_args()
    archive = args.archive or Path(f"/tmp/rtreplay-bench-{args.events // 1_000_000}M")
    ensure(archive, args.events, 60.0)
    small = Path(f"/tmp/rtreplay-bench-small-{args.small_events}")
    ensure(small, args.small_events, 2.0)
    print(f"## analyze --jobs ({archive})\n\n{bench_jobs(archive, args.repeat)}\n", flush=True)
    if not args.skip_spark:
        print(f"## Spark vs local ({archive})\n\n{bench_spark(archive)}\n", flush=True)
    print(f"## compaction ({small})\n\n{bench_compact(small, args.repeat)}\n", flush=True)
    if args.s3:
        print(f"## compaction in object storage ({small})\n\n{bench_compact_s3(small, args.repeat)}\n", flush=True)


if __name__ == "__main__":
    main()
