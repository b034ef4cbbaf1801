"""Peak memory of a replay whose requests sit in long audio contexts: plans streamed vs planned up front.

    python benchmarks/bench_replay_memory.py                 # 10 sessions x 10 requests, 10 min of audio each
    python benchmarks/bench_replay_memory.py --short         # 2 sessions x 5 requests, 2 min (a quick check)

Writes an archive through the recorder's writer: per session, `--minutes` of user speech as 30 s
`conversation.item.create` messages (PCM16 24 kHz, kept in the archive), each echoed by the server as GA does
(`conversation.item.added`/`.done`), then `--requests` out-of-band `response.create`s (tool_choice required)
answered `completed`. Every request is then replayed once against the in-process simulator, with the replay
sessions recorded (`--record`), so each replay session sends the whole context (its audio base64 in
`conversation.item.create`s) and the writer journals it. Each mode runs in a fresh process; the figure is
that process's peak RSS (`ru_maxrss`), beside its RSS after imports:

- streamed: `rtreplay.analyzer.replay.suite.run_gate` — plans built as the workers take them (the code path of
  `rtreplay replay` and `rtreplay check`), on all the requests and on the first `--small-sessions` sessions'
  (the peak should not depend on the number of requests);
- up front: every plan built first (`run.plan_jobs`, as replay did before), then sent — on the small
  selection only, because at full size it holds every context's audio at once.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

RATE = 24_000  # PCM16 mono samples per second
TURN_S = 30


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def write_archive(out: Path, sessions: int, requests: int, minutes: float) -> int:
    """The synthetic archive; returns the bytes of raw audio per session."""
    import base64

    from rtreplay.recorder.writer import ArchiveWriter

    turns = max(1, round(minutes * 60 / TURN_S))
    rng = np.random.default_rng(0)
    async with ArchiveWriter(out) as writer:
        for s in range(sessions):
            h = writer.open_session({"method": "GET", "path": "/v1/realtime", "query": "model=gpt-realtime",
                                     "client": None, "upstream": "ws://127.0.0.1:9", "headers": []})
            h.server(orjson.dumps({"type": "session.created", "event_id": f"event_{s}_0", "session": {
                "type": "realtime", "object": "realtime.session", "id": f"sess_{s}", "model": "gpt-realtime",
                "output_modalities": ["text"], "instructions": "Be brief.", "tool_choice": "auto",
                "tools": [{"type": "function", "name": "lookup_customer", "parameters": {
                    "type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}]}}).decode())
            previous = None
            for t in range(turns):
                item_id = f"item_s{s}t{t}"
                speech = (rng.standard_normal(RATE * TURN_S) * 3000).astype("<i2").tobytes()
                audio = base64.b64encode(speech).decode("ascii")
                h.client(orjson.dumps({"type": "conversation.item.create", "event_id": f"c{s}_{t}", "item": {
                    "id": item_id, "type": "message", "role": "user",
                    "content": [{"type": "input_audio", "audio": audio}]}}).decode())
                echo = {"id": item_id, "type": "message", "role": "user", "status": "completed",
                        "content": [{"type": "input_audio", "transcript": None}]}
                for kind in ("conversation.item.added", "conversation.item.done"):
                    h.server(orjson.dumps({"type": kind, "event_id": f"e{s}_{t}_{kind[-4:]}",
                                           "previous_item_id": previous, "item": echo}).decode())
                previous = item_id
                await asyncio.sleep(0)  # let the writer thread's hand-offs run
            for r in range(requests):
                meta = {"request": f"{s}-{r}"}
                h.client(orjson.dumps({"type": "response.create", "event_id": f"req_{s}_{r}", "response": {
                    "conversation": "none", "tool_choice": "required", "metadata": meta}}).decode())
                rid = f"resp_s{s}r{r}"
                h.server(orjson.dumps({"type": "response.created", "event_id": f"rc{s}_{r}", "response": {
                    "id": rid, "object": "realtime.response", "status": "in_progress", "conversation_id": None,
                    "metadata": meta, "output": []}}).decode())
                h.server(orjson.dumps({"type": "response.done", "event_id": f"rd{s}_{r}", "response": {
                    "id": rid, "object": "realtime.response", "status": "completed", "conversation_id": None,
                    "metadata": meta, "output": [{"id": f"item_c{s}r{r}", "type": "function_call",
                                                  "name": "lookup_customer", "call_id": f"call_{s}{r}",
                                                  "arguments": "{\"email\": \"a@example.com\"}"}]}}).decode())
            h.close({"client": None, "server": None, "first_close": None})
    return turns * RATE * TURN_S * 2


def child(mode: str, archive: Path, record: Path, concurrency: int, sessions: int) -> None:
    """One measurement, in this (fresh) process: prints a JSON line."""
    from rtreplay.analyzer.replay.plan import RECORDED
    from rtreplay.analyzer.replay.run import Selection, plan_jobs, run_jobs, select
    from rtreplay.analyzer.replay.suite import Gate, run_gate
    from rtreplay.recorder.store import Archive
    from rtreplay.simulator.server import serve

    base = rss_mb()
    start = time.perf_counter()
    arc = Archive.open(archive)
    small = Selection(sessions=tuple(sorted({r.session_id for r in select(arc, Selection())})[:sessions]))
    if mode.startswith("streamed"):
        gate = Gate(arc, small if mode == "streamed-small" else Selection(), (RECORDED,), (), 1, "sim", "none",
                    concurrency, None, 120.0, record)
        result = asyncio.run(run_gate(gate, simulator=serve))
        outcomes = [r.answer.outcome for r in result.results]
    else:
        jobs = plan_jobs(arc, select(arc, small), [RECORDED], 1)

        async def go() -> list:
            async with serve() as sim:
                return await run_jobs(jobs, sim.url, record=record, concurrency=concurrency, timeout=120.0)
        outcomes = [r.answer.outcome for r in asyncio.run(go())]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "replays": len(outcomes), "completed": outcomes.count("completed"),
                      "base_mb": round(base), "peak_mb": round(peak), "seconds": round(time.perf_counter() - start, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10, help="out-of-band requests per session")
    parser.add_argument("--minutes", type=float, default=10.0, help="audio context per session")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--small-sessions", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ARCHIVE", "RECORD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.concurrency, args.small_sessions)
        return
    if args.short:
        args.sessions, args.requests, args.minutes, args.small_sessions = 2, 5, 2.0, 1
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        t0 = time.perf_counter()
        per_session = asyncio.run(write_archive(archive, args.sessions, args.requests, args.minutes))
        size = sum(f.stat().st_size for f in archive.rglob("*.parquet"))
        print(f"archive: {args.sessions} sessions x {args.requests} out-of-band requests, {args.minutes:g} min of "
              f"audio each ({per_session / 1e6:.1f} MB PCM16, {per_session * 4 / 3 / 1e6:.1f} MB as base64 in a "
              f"replay); {size / 1e6:.0f} MB of Parquet, written in {time.perf_counter() - t0:.1f} s")
        for mode in ("streamed", "streamed-small", "upfront-small"):
            done = subprocess.run([sys.executable, __file__, "--concurrency", str(args.concurrency),
                                   "--small-sessions", str(args.small_sessions),
                                   "--child", mode, str(archive), str(Path(tmp) / f"replays-{mode}")],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
            print(done.stdout.strip())


if __name__ == "__main__":
    main()
