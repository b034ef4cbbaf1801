"""The voice reports on an archive recorded through the proxy from the simulator, against what the script did.

A scripted caller speaks five turns to the simulator (server VAD, a fault profile whose `[latency]` holds each
response's first output back by 300 ms + 200 ms per 1,000 context tokens and whose `[transcription]` fails every
turn). It barges in on three answers: it truncates the first cut item at 100 ms (valid: a word of audio is 300 ms
and one had arrived), the second at 99,999 ms (invalid: the simulator answers with an error) and leaves the third
alone. Then it forces a function call and never answers it. Every expected number below comes from that script
and the profile, never from the analyzer. The voice HTML page is rendered in headless Chromium.
"""
from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest
import websockets
from click.testing import CliRunner

from rtreplay import queries
from rtreplay.analyzer.report import cost, failures, interruptions, latency
from rtreplay.analyzer.report.voice_read import read_archive
from rtreplay.cli import cli
from rtreplay.recorder.proxy import running
from rtreplay.simulator.demo_app import tone
from rtreplay.simulator.server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import render_html_check  # noqa: E402  (a script, not a package)

PROFILE = """
[latency]
first_output_ms = 300
per_1k_context_ms = 200
[transcription]
fail_rate = 1.0
code = "audio_unintelligible"
"""
VOICE, SILENCE = tone(0.6, 8000), tone(0.5, 0)
CHUNK = 960  # 20 ms of PCM16 at 24 kHz
TOOL = {"type": "function", "name": "lookup", "description": "Look a customer up",
        "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}


class Caller:
    def __init__(self, ws) -> None:
        self.ws = ws

    async def send(self, **event) -> None:
        await self.ws.send(json.dumps(event))

    async def until(self, kind: str, **match) -> dict:
        async with asyncio.timeout(20):
            while True:
                event = json.loads(await self.ws.recv())
                if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event

    async def audio(self, pcm: bytes) -> None:
        for at in range(0, len(pcm), CHUNK):
            await self.send(type="input_audio_buffer.append", audio=base64.b64encode(pcm[at:at + CHUNK]).decode())


async def call(url: str) -> None:
    async with websockets.connect(f"{url}/v1/realtime?model=gpt-realtime", max_size=None) as ws:
        c = Caller(ws)
        await c.until("session.created")
        await c.send(type="session.update", session={"type": "realtime", "tools": [TOOL], "audio": {
            "input": {"transcription": {"model": "gpt-4o-transcribe"}}}})
        await c.until("session.updated")
        await c.audio(VOICE + SILENCE)  # turn 1: answered in full
        await c.until("response.done")
        await c.audio(VOICE + SILENCE)  # turn 2 ...
        for truncate_at in (100, 99_999, None):  # ... barged in on three times
            first = await c.until("response.output_audio.delta")
            await c.audio(VOICE)
            await c.until("response.done")
            if truncate_at is not None:
                await c.send(type="conversation.item.truncate", event_id=f"evt_trunc_{truncate_at}",
                             item_id=first["item_id"], content_index=0, audio_end_ms=truncate_at)
                await c.until("conversation.item.truncated" if truncate_at == 100 else "error")
            await c.audio(SILENCE)
        await c.until("response.done")  # turn 5 answered in full
        await c.send(type="response.create", event_id="evt_tool", response={
            "output_modalities": ["text"], "tool_choice": {"type": "function", "name": "lookup"}})
        await c.until("response.done")  # the call is never answered


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("voice-scenario")
    profile = root / "voice.toml"
    profile.write_text(PROFILE)

    async def main() -> None:
        async with serve(seed=3, faults=str(profile), interval=0.03) as sim, \
                running(upstream=sim.url, out=root / "logs") as proxy:
            await call(proxy.url)

    asyncio.run(main())
    facts, problems = read_archive(root / "logs")
    assert problems == [] and len(facts) == 1
    return root / "logs", facts


def test_latency_follows_the_profile(recorded):
    _, facts = recorded
    turns = [s for s in facts[0].samples if s.measure == "turn_to_first_audio"]
    assert len(turns) == 5
    contexts = [s.context_tokens for s in turns]
    assert contexts == sorted(contexts) and len(set(contexts)) == 5  # the context grows every turn
    # How long each wait was is timing (the simulator's schedule is tested without clocks in
    # tests/simulator/test_simulator_voice_profile.py); here: every turn measured, against its context.
    report = latency.build(facts).to_json()
    m = {x["measure"]: x for x in report["measures"]}
    assert m["turn_to_first_audio"]["n"] == 5 and m["request_to_created"]["n"] == 1
    assert m["tool_call_to_output"]["n"] == 0  # never answered


def test_interruptions_as_scripted(recorded):
    _, facts = recorded
    r = interruptions.build(facts).to_json()
    assert r["totals"] == {"turns": 5, "barge_ins": 3, "barge_ins_truncated": 2, "barge_ins_not_truncated": 1,
                           "truncations": 2, "invalid_truncations": 1, "truncate_errors": 1}
    first, second, third = r["barge_ins"]
    assert (first["audio_end_ms"], first["valid"], second["audio_end_ms"], second["valid"]) == (100, True, 99_999, False)
    assert third["truncate_seq"] is None
    words = first["transcript_generated"].split()
    assert first["transcript_heard"].split() == words[:1]  # 100 ms of 300 ms words: only the first began
    assert all(b["generated_ms"] >= 300 for b in r["barge_ins"])  # at least the word the caller had received


def test_failures_and_cost_as_scripted(recorded):
    _, facts = recorded
    r = failures.build(facts).to_json()
    kinds = {}
    for k in r["kinds"]:
        kinds[(k["kind"], k["cause"])] = kinds.get((k["kind"], k["cause"]), 0) + k["count"]
    assert kinds == {("transcription_failed", None): 5, ("barge_in_not_truncated", None): 1,
                     ("invalid_truncate", None): 1, ("error", "conversation.item.truncate"): 1,
                     ("hung_tool_call", None): 1}
    c = cost.build(facts).to_json()
    assert c["total"]["responses"] == 6 and c["total"]["usd"] > 0 and c["unpriced_models"] == []
    assert c["total"]["unheard_audio_usd"] > 0  # the valid truncate cut audio that was paid for


def test_sql_agrees_on_the_scenario(recorded):
    root, facts = recorded
    con = queries.connect(root)
    sql = {(r["kind"], r["detail"], r["cause"]): r["count"]
           for r in con.sql(queries.report_sql("failures")).pl().to_dicts()}
    assert sql == {(k["kind"], k["detail"], k["cause"]): k["count"] for k in failures.build(facts).to_json()["kinds"]}
    lat = con.sql(queries.report_sql("voice_latency")).pl().to_dicts()
    want = latency.build(facts).to_json()["measures"]
    assert [(x["measure"], x["n"]) for x in lat] == [(x["measure"], x["n"]) for x in want]
    assert [x["p50"] for x in lat] == [pytest.approx(x["p50"]) if x["p50"] is not None else None for x in want]


@pytest.mark.skipif(render_html_check.find_browser() is None, reason="no Chromium installed")
def test_voice_html_renders_in_headless_chromium(recorded, tmp_path):
    root, _ = recorded
    page = tmp_path / "voice.html"
    result = CliRunner().invoke(cli, ["analyze", str(root), "--report", "all", "--html", str(page), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert page.read_text().count("<svg") == 6  # tool_choice 2, latency 1 (one session minute: no trend), interruptions, cost, failures
    assert render_html_check.check(page, tmp_path / "voice.png", render_html_check.find_browser()) == []
