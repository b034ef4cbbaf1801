"""Replay against the simulator: the seed report reproduces, its fix does not, the context is the recorded one.

The fixture records the demo app (analyzer/demo_app.py) through the recording proxy from a simulator running
the `seed-oob-forced-function` profile: per conversation a text turn, a function call and its output, a
spoken turn (audio kept), then one out-of-band request per tool_choice form. The object form fails there.
"""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rtreplay.analyzer.state import load, match
from rtreplay.cli.replay import replay as replay_command
from rtreplay.simulator.demo_app import DEMO_API_KEY
from rtreplay.analyzer.replay.run import Selection, plan_jobs, run_jobs, select
from rtreplay.analyzer.replay.summary import summarize
from rtreplay.analyzer.replay.plan import RECORDED, plan_replay, variants
from rtreplay.analyzer.replay.send import connected
from rtreplay.analyzer.state.session import Item
from rtreplay.analyzer.state.timeline import states_before
from rtreplay.simulator.server import serve
from replay_support import PROFILE, record_demo_archive

@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recorded")
    asyncio.run(record_demo_archive(out))
    return out


def test_replay_reproduces_the_object_form_failure_and_the_string_forms_fix_it(archive: Path, tmp_path: Path) -> None:
    record = tmp_path / "replays"
    result = CliRunner().invoke(replay_command, [
        str(archive), "--target", "sim", "--sim-faults", PROFILE, "--failed", "--vary", "tool_choice=required,auto",
        "--repeat", "3", "--record", str(record), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = {r["variant"]: r for r in orjson.loads(result.output)["variants"]}
    assert list(rows) == ["recorded", "tool_choice=required", "tool_choice=auto"]
    # Two recorded failing requests (one per conversation), each replayed 3 times per variant.
    assert rows["recorded"]["original"]["outcomes"]["failed"] == 2
    assert rows["recorded"]["replayed"]["outcomes"]["failed"] == 6
    assert rows["recorded"]["replayed"]["failure_rate"] == 1.0
    assert rows["recorded"]["errors"] == {"failed server_error": 6}
    for name in ("tool_choice=required", "tool_choice=auto"):
        assert rows[name]["replayed"]["outcomes"]["completed"] == 6, rows[name]
        assert rows[name]["replayed"]["failure_rate"] == 0.0
        assert rows[name]["original"]["failure_rate"] == 1.0
    assert rows["tool_choice=required"]["forced_call"] == {"happened": 6, "of": 6}
    lo, hi = rows["recorded"]["replayed"]["interval"]
    assert lo > 0.5 and hi == 1.0


def test_replays_are_an_archive_tagged_with_what_they_replay(archive: Path, tmp_path: Path) -> None:
    record = tmp_path / "replays"
    requests = select(archive, Selection(failed=True))
    jobs = plan_jobs(archive, requests, variants(["tool_choice=required"]), repeat=2)

    async def go():
        async with serve(faults=PROFILE) as sim:
            return await run_jobs(jobs, [sim.url] * len(jobs), record=record, concurrency=2,
                                  headers=[("Authorization", f"Bearer {DEMO_API_KEY}")])

    results = asyncio.run(go())
    replayed = {r.request_id.split(":")[0]: r for r in match.requests(record)}
    assert len(replayed) == len(jobs) == 8
    for res in results:
        tag = next(e for e in load.session_events(load.read_session(record, res.session_id))
                   if e.type == "proxy.open").data["replay"]
        assert tag == {"of_session": res.job.request.session_id, "of_seq": res.job.request.seq,
                       "of_response_id": res.job.request.response_id, "variant": res.job.variant.name,
                       "repeat": res.job.repeat}
        seen = replayed[res.session_id]  # the analyzer reads a replay like any other session
        assert seen.outcome == res.answer.outcome
        assert seen.form_sent == ("function" if res.job.variant == RECORDED else "required")
    assert summarize(results).rows[0].replayed.outcomes["failed"] == 4
    for f in record.rglob("*"):  # the key went to the target, never to disk
        assert not f.is_file() or DEMO_API_KEY.encode() not in f.read_bytes()


async def test_recreated_items_match_the_rebuilt_state(archive: Path) -> None:
    """Retrieve every recreated item from the simulator: ids, order, content and audio bytes as rebuilt."""
    for request in [r for r in match.requests(archive) if r.scope == "out-of-band" and r.form_sent == "function"]:
        events = load.session_events(load.read_session(archive, request.session_id))
        state = states_before(events, [request.seq], request.session_id)[request.seq]
        plan = plan_replay(state, orjson.loads(request.payload))
        assert any(p.audio for it in state.conversation() for p in it.content), "fixture must keep user audio"
        async with serve() as sim, connected(sim.url, plan.model) as conn:
            for line in plan.lines()[:-1]:
                await conn.send(line)
            chain = []  # (item id, previous_item_id) as the server placed each created item
            while len(chain) < len(plan.item_ids):
                event = await asyncio.wait_for(conn.recv(), 10)
                assert event["type"] != "error", event
                if event["type"] == "conversation.item.added":
                    chain.append((event["item"]["id"], event["previous_item_id"]))
            assert [i for i, _ in chain] == state.order
            assert [p for _, p in chain] == [None, *state.order[:-1]]
            for item_id in state.order:
                await conn.send(orjson.dumps({"type": "conversation.item.retrieve", "item_id": item_id}).decode())
                event = await asyncio.wait_for(conn.recv(), 10)
                while event["type"] in ("conversation.item.done", "session.updated"):  # acks still in flight
                    event = await asyncio.wait_for(conn.recv(), 10)
                assert event["type"] == "conversation.item.retrieved", event
                assert_same_item(event["item"], state.items[item_id])


def assert_same_item(retrieved: dict, rebuilt: Item) -> None:
    """Equal but for what docs/replay.md says cannot be reproduced: server-set fields, assistant audio."""
    assert retrieved["id"] == rebuilt.id
    ignore = {"object", "status", "content"}
    assert {k: v for k, v in retrieved.items() if k not in ignore | {"id"}} == \
           {k: v for k, v in rebuilt.fields.items() if k not in ignore}
    parts = retrieved.get("content", [])
    assert len(parts) == len(rebuilt.content)
    for got, want in zip(parts, rebuilt.content):
        if want.fields["type"] == "output_audio":  # the API cannot create assistant audio: its transcript
            assert got == {"type": "output_text", "text": want.fields.get("transcript") or ""}
            continue
        assert {k: v for k, v in got.items() if k != "audio"} == want.fields
        if want.audio:
            assert base64.b64decode(got["audio"]) == want.audio_bytes()
