"""The race of docs/realtime-protocol.md §11.2 on our own stack: a voice app through the recording proxy to the
simulator (seed-oob-forced-function) streams speech and trailing silence and, without waiting, an out-of-band
`response.create` with a forced function and its own metadata. Server VAD commits the turn and creates its
response first, so the app's request is answered by the *second* response.created. The expected counts come from
the scenario (the profile fails every out-of-band forced function; VAD answers complete) and from what the app
saw on the wire, matched by metadata — never from the analyzer.
"""
from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from rtreplay import queries
from rtreplay.cli import cli
from rtreplay.recorder.proxy import running
from rtreplay.simulator.demo_app import RETURN_RESPONSE, tone
from rtreplay.simulator.server import serve

import websockets

TURNS = 4


def oob_request(n: int) -> dict:
    return {"type": "response.create", "event_id": f"race_{n}", "response": {
        "conversation": "none", "output_modalities": ["text"], "instructions": "Summarize the turn",
        "tools": [RETURN_RESPONSE], "tool_choice": {"type": "function", "name": "return_response"},
        "metadata": {"turn": str(n)}}}


async def speak_and_ask(ws, n: int) -> tuple[str, str, int]:
    """One turn: speech, trailing silence, then the request at once. Returns (the request's status, the VAD
    response's status, how many response.created came before the request's own)."""
    audio = tone(0.8, 8000) + tone(0.7, 0)
    for at in range(0, len(audio), 960):  # 20 ms chunks of PCM16 at 24 kHz
        await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                  "audio": base64.b64encode(audio[at:at + 960]).decode()}))
    await ws.send(json.dumps(oob_request(n)))
    mine = vad = None
    before_mine, status = 0, {}
    while mine is None or vad is None or len(status) < 2:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if event["type"] == "response.created":
            if event["response"]["metadata"] == {"turn": str(n)}:
                mine = event["response"]["id"]
            else:
                vad, before_mine = event["response"]["id"], before_mine + (mine is None)
        elif event["type"] == "response.done":
            status[event["response"]["id"]] = event["response"]["status"]
    return status[mine], status[vad], before_mine


def record(out: Path) -> list[tuple[str, str, int]]:
    async def go():
        async with serve(seed=0, faults="seed-oob-forced-function") as sim, running(upstream=sim.url, out=out) as proxy:
            async with websockets.connect(f"{proxy.url}/v1/realtime?model=gpt-realtime", max_size=None) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                return [await speak_and_ask(ws, n) for n in range(TURNS)]

    return asyncio.run(go())


def test_the_race_gives_exact_counts_in_analyze_sql_and_replay(tmp_path):
    logs = tmp_path / "logs"
    seen = record(logs)
    # On the wire: each out-of-band forced function failed (the profile), each VAD answer completed, and the VAD
    # response.created came before the request's own — the race.
    assert seen == [("failed", "completed", 1)] * TURNS
    res = CliRunner().invoke(cli, ["analyze", str(logs), "--format", "json", "--no-progress"])
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)["groups"]
    got = Counter({(g["form"], g["split"]["scope"], o): g[o] for g in groups
                   for o in ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished") if g[o]})
    assert got == {("function", "out-of-band", "failed"): TURNS}
    sql = queries.report(logs, "failure_rate").to_dicts()
    row = next(r for r in sql if (r["scope"], r["form"]) == ("out-of-band", "function"))
    assert (row["requests"], row["failed"], row["completed"], row["failure_rate"]) == (TURNS, TURNS, 0, 1.0)
    con = queries.connect(logs)
    try:
        pairings = con.sql("SELECT pairing, count(*) FROM outcomes GROUP BY pairing").fetchall()
        initiated = con.sql("SELECT initiated_by, status, count(*) FROM responses GROUP BY ALL ORDER BY 1").fetchall()
    finally:
        con.close()
    assert pairings == [("metadata", TURNS)]
    assert initiated == [("client", "failed", TURNS), ("server", "completed", TURNS)]
    res = CliRunner().invoke(cli, ["replay", str(logs), "--target", "sim", "--sim-faults", "seed-oob-forced-function",
                                   "--failed", "--vary", "tool_choice=recorded,required", "--format", "json",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = {r["variant"]: r for r in json.loads(res.stdout)["variants"]}
    assert rows["recorded"]["original"]["outcomes"]["failed"] == TURNS
    assert rows["recorded"]["replayed"]["outcomes"]["failed"] == TURNS
    assert rows["tool_choice=required"]["replayed"]["outcomes"]["completed"] == TURNS
