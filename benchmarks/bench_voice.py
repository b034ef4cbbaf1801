"""Benchmark the voice reports end to end: `rtreplay analyze ARCHIVE --report NAME --format json`, one child each.

    python benchmarks/bench_voice.py                       # 10M events in /tmp/rtreplay-bench-10M
    python benchmarks/bench_voice.py --events 1000000      # a short run
    python benchmarks/bench_voice.py --archive /tmp/x      # an archive made by generate_archive.py

For each of latency, interruptions, cost, failures (all four in one run too, and the tool_choice report for
reference) a child process runs the report
(interpreter start-up, reading, the walk, the report, printing JSON): wall seconds, archived events per second,
CPU seconds and the child's own peak RSS. Reports run side by side in one invocation, in rotation, `--repeat`
times, so machine load affects all alike; the best run of each is reported. Sanity checks against the
generator's sidecar: requests answered by a response.created <= requests recorded, every session read.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bench_analyze import TARGET, generated_archive

REPORTS = ("tool_choice", "latency", "interruptions", "cost", "failures", "latency,interruptions,cost,failures")
CHILD = ("import resource, sys\nfrom rtreplay.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
         "    code = e.code\nelse:\n    code = 0\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
         "print(f'RUSAGE {u.ru_maxrss} {u.ru_utime + u.ru_stime}', file=sys.stderr)\nsys.exit(code)\n")


def run(archive, report: str) -> tuple[dict, float, int, float]:
    cmd = [sys.executable, "-c", CHILD, "analyze", str(archive), "--report", report, "--format", "json",
           "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"analyze --report {report} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("RUSAGE "))
    _, rss_kib, cpu = line.split()
    return json.loads(proc.stdout), seconds, int(rss_kib) * 1024, float(cpu)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    repeat = 1
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i:i + 2]
    archive, expected = generated_archive(args, __doc__.split("\n\n")[0])
    events = expected["events"]
    best: dict[str, tuple[float, int, float]] = {}
    problems = []
    for _ in range(repeat):
        for report in REPORTS:
            out, seconds, rss, cpu = run(archive, report)
            if report not in best or seconds < best[report][0]:
                best[report] = (seconds, rss, cpu)
            if report == "latency":
                m = {x["measure"]: x for x in out["measures"]}
                if m["request_to_created"]["n"] > expected["requests"]:
                    problems.append("more requests answered than recorded")
                if out["sessions"] != expected["sessions"]:
                    problems.append(f"read {out['sessions']} sessions, archive has {expected['sessions']}")
    print(f"archive {archive}: {events:,} events, {expected['sessions']} sessions (best of {repeat})")
    print(f"{'report':<40} {'wall s':>7} {'events/s':>10} {'CPU s':>7} {'peak RSS':>9}")
    for report, (seconds, rss, cpu) in best.items():
        name = "all four" if "," in report else report
        print(f"{name:<40} {seconds:7.2f} {events / seconds / 1e6:9.2f}M {cpu:7.2f} {rss / 2**20:7.0f}Mi"
              f"{'' if events / seconds >= TARGET else '  (below 1M/s)'}")
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
