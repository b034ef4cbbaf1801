"""Golden sessions recorded through the proxy from the simulator (tests/data/make_golden.py): the rebuilt
conversation at each checkpoint equals what the simulator returned for `conversation.item.retrieve` of
every item, in order, content and audio included."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.timeline import History, rebuild, state_at

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
NAMES = sorted(p.name.removesuffix(".expected.json") for p in GOLDEN.glob("*.expected.json"))


def _comparable(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "object"}


@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_items_equal_retrieved_items_at_every_checkpoint(name: str) -> None:
    ((sid, table),) = list(load.iter_sessions(GOLDEN / name))
    events = load.session_events(table)
    retrieved = [e.seq for e in events if e.type == "conversation.item.retrieved"]
    # The retrieves themselves are left out of the fold, so the expectation is not fed into the rebuild.
    without = [e for e in events if e.type != "conversation.item.retrieved"]
    history = History(without, sid, every=64)
    checkpoints = json.loads((GOLDEN / f"{name}.expected.json").read_text())["checkpoints"]
    assert len(checkpoints) >= 3
    for cp in checkpoints:
        seq = retrieved[cp["retrieved_count"] - len(cp["items"])] - 1  # just before the checkpoint's retrieves
        for state in (state_at(without, seq, sid), history.state_at(seq), state_at(events, seq, sid)):
            got = [it.to_json(with_audio=True) for it in state.conversation()]
            assert got == [_comparable(i) for i in cp["items"]], cp["name"]
    final = rebuild(events, sid)
    assert final.anomalies == []


def test_golden_sessions_cover_the_issue_list() -> None:
    types = set()
    for name in NAMES:
        for _, table in load.iter_sessions(GOLDEN / name):
            types |= set(table.column("type").to_pylist())
            payloads = "\n".join(table.column("payload").to_pylist())
            types |= {"root"} if '"previous_item_id":"root"' in payloads else set()
            types |= {"out-of-band"} if '"conversation":"none"' in payloads else set()
    assert {"response.function_call_arguments.delta", "conversation.item.deleted", "conversation.item.truncated",
            "response.output_audio.delta", "input_audio_buffer.speech_started", "root", "out-of-band"} <= types
