"""Barge-ins over WebRTC/SIP, recorded through the proxy from the simulator's WebRTC-like mode (a profile with
`[transport] kind = "webrtc"`: no audio deltas; output_audio_buffer.started/.stopped/.cleared; the server truncates
the cut item itself).

The scripted caller speaks four turns (server VAD). Turn 1 it hears in full (it waits for
output_audio_buffer.stopped). On the answer to turn 2 it barges in as soon as playback started (the response is
still generating); on the answer to turn 3 it barges in after that response's response.done (playback outlasts
generation: only the output audio buffer shows the assistant still talking). The answer to turn 4 the app stops
with output_audio_buffer.clear after its response.done (a stop button, not speech: no barge-in), and one more
clear, with nothing playing, gets no reply. So: 4 turns, 2 barge-ins, each cut by the server (cleared, then conversation.item.truncated at the
point it says), no client truncate, no failure but the scripted cancel's error. Every expected value comes from the script and what the caller saw.
"""
from __future__ import annotations

import asyncio
import base64
import json

import pytest
import websockets
from click.testing import CliRunner

from rtreplay import queries
from rtreplay.analyzer.report import failures, interruptions, latency
from rtreplay.analyzer.report.voice_read import read_archive
from rtreplay.cli import cli
from rtreplay.recorder.proxy import running
from rtreplay.simulator.demo_app import tone
from rtreplay.simulator.server import serve

PROFILE = '[transport]\nkind = "webrtc"\n'
VOICE, SILENCE = tone(0.6, 8000), tone(0.5, 0)
CHUNK = 960  # 20 ms of PCM16 at 24 kHz


class Caller:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen: list[dict] = []

    async def send(self, **event) -> None:
        await self.ws.send(json.dumps(event))

    async def until(self, kind: str) -> dict:
        async with asyncio.timeout(20):
            while True:
                event = json.loads(await self.ws.recv())
                self.seen.append(event)
                if event["type"] == kind:
                    return event

    async def audio(self, pcm: bytes) -> None:
        for at in range(0, len(pcm), CHUNK):
            await self.send(type="input_audio_buffer.append", audio=base64.b64encode(pcm[at:at + CHUNK]).decode())


async def call(url: str, script: dict) -> None:
    async with websockets.connect(f"{url}/v1/realtime?model=gpt-realtime", max_size=None) as ws:
        c = Caller(ws)
        await c.until("session.created")
        await c.audio(VOICE + SILENCE)  # turn 1, heard in full
        await c.until("output_audio_buffer.stopped")
        await c.audio(VOICE + SILENCE)  # turn 2: barged in on while it plays and still generates
        script["cut"].append((await c.until("output_audio_buffer.started"))["response_id"])
        await c.audio(VOICE)
        script["truncated"].append(await c.until("conversation.item.truncated"))
        await c.audio(SILENCE)  # turn 3: barged in on after its response.done
        script["cut"].append((await c.until("output_audio_buffer.started"))["response_id"])
        await c.until("response.done")
        await c.audio(VOICE)
        script["truncated"].append(await c.until("conversation.item.truncated"))
        await c.audio(SILENCE)  # turn 4: the app's stop button, once the answer is generated (still playing)
        await c.until("response.done")
        await c.send(type="output_audio_buffer.clear")
        await c.until("conversation.item.truncated")
        await c.send(type="output_audio_buffer.clear")  # nothing plays: no reply
        await c.send(type="response.cancel")  # ... so the next event is this error
        script["after_second_clear"] = (await c.until("error"))["error"]["code"]
        script["audio_deltas"] = sum(1 for e in c.seen if e["type"] == "response.output_audio.delta")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("webrtc-scenario")
    profile = root / "webrtc.toml"
    profile.write_text(PROFILE)
    script: dict = {"cut": [], "truncated": []}

    async def main() -> None:
        async with serve(seed=5, faults=str(profile), interval=0.03) as sim, \
                running(upstream=sim.url, out=root / "logs") as proxy:
            await call(proxy.url, script)

    asyncio.run(main())
    facts, problems = read_archive(root / "logs")
    assert problems == [] and len(facts) == 1
    return root / "logs", facts, script


def test_the_simulator_sends_no_audio_and_ignores_a_clear_with_nothing_playing(recorded):
    _, _, script = recorded
    assert script["audio_deltas"] == 0
    assert script["after_second_clear"] == "response_cancel_not_active"


def test_barge_ins_found_by_the_output_audio_buffer(recorded):
    _, facts, script = recorded
    r = interruptions.build(facts).to_json()
    assert r["totals"] == {"turns": 4, "barge_ins": 2, "barge_ins_truncated": 2, "barge_ins_not_truncated": 0,
                           "truncations": 0, "invalid_truncations": 0, "truncate_errors": 0}
    got = [(b["response_id"], b["item_id"], b["audio_end_ms"], b["source"], b["truncated_by"], b["valid"],
            b["generated_ms"]) for b in r["barge_ins"]]
    assert got == [(rid, t["item_id"], t["audio_end_ms"], "output_audio_buffer", "server", None, None)
                   for rid, t in zip(script["cut"], script["truncated"])]
    assert all(b["seq"] < b["cleared_seq"] < b["truncate_seq"] for b in r["barge_ins"])
    assert all(b["transcript_generated"] and b["transcript_heard"] is None for b in r["barge_ins"])
    kinds = [(k["kind"], k["detail"], k["count"]) for k in failures.build(facts).to_json()["kinds"]]
    assert kinds == [("error", "response_cancel_not_active", 1)]  # the scripted cancel; no barge-in failure
    lat = {m["measure"]: m["n"] for m in latency.build(facts).to_json()["measures"]}
    assert lat["turn_to_first_audio"] == 4  # first audio over WebRTC: output_audio_buffer.started


def test_show_marks_the_barge_ins_the_server_cut(recorded):
    root, facts, _ = recorded
    result = CliRunner().invoke(cli, ["show", str(root), facts[0].session_id])
    assert result.exit_code == 0, result.output
    marks = [line.split("▲ ", 1)[1] for line in result.output.splitlines() if "▲ BARGE-IN" in line]
    assert marks == [f"BARGE-IN: cut {b.response_id} while its audio played (cleared at seq {b.cleared_seq}); "
                     f"the server truncated at {b.audio_end_ms} ms (seq {b.truncate_seq})" for b in facts[0].barge_ins]
    assert len(marks) == 2


def test_sql_finds_the_same_barge_ins(recorded):
    root, facts, _ = recorded
    con = queries.connect(root)
    try:
        rows = con.sql("SELECT seq, response_id, item_id, cleared_seq, truncate_seq, truncated_by, audio_end_ms "
                       "FROM barge_ins ORDER BY seq").fetchall()
    finally:
        con.close()
    assert rows == [(b.seq, b.response_id, b.item_id, b.cleared_seq, b.truncate_seq, b.truncated_by, b.audio_end_ms)
                    for b in facts[0].barge_ins]
