"""Coalesced loading changes no result: folding a session's runs (analyzer/load.py `session_events`) gives the
same state as folding its rows one by one, at every seq, for generated and golden sessions written to Parquet.

The comparison covers more than `to_json`: output items, response timings and requests, the input buffer
and the bookkeeping a snapshot carries (pending transcripts, committed audio, waiting requests).
"""
from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.reduce import fold
from rtreplay.analyzer.state.session import Event, SessionState
from rtreplay.analyzer.state.timeline import History, rebuild, state_at, states_before, timeline
from rtreplay.recorder import archive, schema
from events_factory import Session

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def full(state: SessionState) -> dict:
    """Everything a state holds, JSON-comparable (audio as bytes)."""
    out = state.to_json(with_audio=True)
    out["outputs"] = {k: v.to_json(with_audio=True) for k, v in state.outputs.items()}
    out["responses_all"] = {rid: (r.status, r.conversation_id, r.out_of_band, r.output, r.final, r.request_seq,
                                  r.request, r.created_seq, r.done_seq, r.created_mono_ns, r.first_output_mono_ns,
                                  r.done_mono_ns) for rid, r in state.responses.items()}
    out["buffer"] = (state.input_audio_bytes(), state.input_written, state.buffer_start, state.speech_ms)
    out["books"] = (state.waiting_requests, {k: b"".join(v) for k, v in state.committed_audio.items()},
                    {k: bytes(v) for k, v in state.client_audio.items()},
                    {k: [e.seq for e in v] for k, v in state.pending_transcription.items()}, state.closed,
                    state.client_ids, state.rejected, state.walk)
    items = [*state.items.values(), *state.outputs.values()]
    out["parts"] = {i.id: [len(p.audio) > 0 for p in i.content] for i in items}
    return copy.deepcopy(out)  # the fold goes on changing the lists and dicts it holds


def write(root: Path, events: list[Event]) -> pa.Table:
    """The events as one session's Parquet file (audio cut out where given), read back as the loader does."""
    sid = schema.new_session_id(1_790_000_000_000_000_000)
    now = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
    rows = {
        "session_id": [sid] * len(events), "seq": [e.seq for e in events],
        "ts": [now + dt.timedelta(milliseconds=i) for i in range(len(events))],
        "mono_ns": [e.mono_ns for e in events], "direction": [e.direction for e in events],
        "type": [e.type for e in events], "event_id": [e.data.get("event_id") for e in events],
        "response_id": [e.response_id for e in events], "item_id": [e.item_id for e in events],
        "payload": [e.payload for e in events], "audio": [e.audio for e in events],
        "audio_at": [len(e.payload) - 2 if e.audio is not None else None for e in events],
        "size": [len(e.payload) for e in events],
    }
    archive.write_parquet(pa.table(rows, schema=schema.EVENT_SCHEMA), archive.parquet_path(root, sid))
    return load.read_session(root, sid)


def assert_same_at_every_seq(table: pa.Table) -> list[Event]:
    """Coalesced and row-by-row loading fold to equal states after every row (one pass, then spot checks
    through `state_at` and `History`); returns the coalesced events."""
    rows = load.session_events(table, coalesce=False)
    runs = load.session_events(table)
    assert sum(e.count for e in runs) == len(rows) == table.num_rows
    seqs = [e.seq for e in rows]
    expected = []
    state = SessionState()
    for e in rows:
        fold([e], state)
        expected.append(full(state))
    befores = states_before(runs, [s + 1 for s in seqs])
    for s, want in zip(seqs, expected):
        assert full(befores[s + 1]) == want, f"state after seq {s}"
    history = History(runs, every=3)
    for s, want in list(zip(seqs, expected))[:: max(1, len(seqs) // 15)]:
        assert full(state_at(runs, s)) == want
        assert full(history.state_at(s)) == want
    assert full(rebuild(runs)) == full(rebuild(rows))
    return runs


# -- generated sessions: realistic turns with every way a run can go wrong ----------------------------------
@st.composite
def sessions(draw) -> list[Event]:
    s = Session()
    s.session_created()
    chunk = st.binary(min_size=0, max_size=6)
    for t in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["audio", "text", "function", "appends"]))
        if kind == "appends":
            for _ in range(draw(st.integers(1, 5))):
                s.client({"type": "input_audio_buffer.append"}, audio=draw(chunk))
            continue
        rid, iid = f"r{t}", f"i{t}"
        s.ev({"type": "response.created", "response": {"id": rid, "status": "in_progress", "conversation_id": "c"}})
        item = {"id": iid, "type": "function_call" if kind == "function" else "message", "role": "assistant",
                "content": []}
        if draw(st.booleans()):  # else the deltas are for an unknown item
            s.ev({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        parts = draw(st.integers(0, 2)) if kind != "function" else 0  # none: deltas create one (anomaly)
        for index in range(parts):
            part = {"type": "audio", "transcript": ""} if kind == "audio" else {"type": "text", "text": ""}
            s.ev({"type": "response.content_part.added", "response_id": rid, "item_id": iid, "content_index": index,
                  "part": part})
        ids = {"response_id": draw(st.sampled_from([rid, rid, rid, "other"])), "item_id": iid, "output_index": 0}
        for _ in range(draw(st.integers(0, 8))):
            step = draw(st.sampled_from(["delta", "delta", "delta", "append", "odd"]))
            index = draw(st.sampled_from([0, 0, 0, 1, None]))
            at = {**ids, **({"content_index": index} if index is not None else {})}
            if step == "append":
                s.client({"type": "input_audio_buffer.append"}, audio=draw(chunk))
            elif kind == "function":
                name = draw(st.sampled_from(["function_call", "function_call", "mcp_call"]))
                s.ev({"type": f"response.{name}_arguments.delta", **ids, "delta": draw(st.text(max_size=3))})
            elif kind == "text" or draw(st.booleans()):
                name = ("response.output_text.delta" if kind == "text" else draw(st.sampled_from(
                    ["response.output_audio_transcript.delta", "response.audio_transcript.delta"])))
                delta = draw(st.text(max_size=3)) if step == "delta" else draw(st.sampled_from([5, None, ["x"]]))
                s.ev({"type": name, **at, "delta": delta})
            else:
                name = draw(st.sampled_from(["response.output_audio.delta", "response.output_audio.delta",
                                             "response.audio.delta"]))
                inline = step == "odd"  # audio left inline in the payload (not cut out)
                s.ev({"type": name, **at, **({"delta": "AAEC"} if inline else {})},
                     audio=None if inline else draw(chunk))
        if draw(st.booleans()):
            s.ev({"type": "response.done", "response": {"id": rid, "status": "completed", "output": [item]}})
    if draw(st.booleans()):
        s.ev({"type": "input_audio_buffer.committed", "item_id": "u9", "previous_item_id": None})
    return s.events


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sessions())
def test_generated_sessions_fold_alike_at_every_seq(tmp_path_factory, events) -> None:
    assert_same_at_every_seq(write(tmp_path_factory.mktemp("gen"), events))


def test_interleaved_audio_and_transcript_coalesce_into_one_event_per_part(tmp_path) -> None:
    s = Session()
    s.session_created()
    s.audio_turn("u1", "a1", "r1", None, [bytes([i]) * 960 for i in range(30)], [bytes([i]) * 2400 for i in range(20)])
    runs = assert_same_at_every_seq(write(tmp_path, s.events))
    deltas = [e for e in runs if e.type.startswith("response.output_audio")]
    assert [e.count for e in deltas if e.run is not None] == [40]  # 20 audio + 20 transcript deltas
    assert len(runs) < len(s.events) - 60
    lines = [text for _, _, text, _ in timeline(runs)]
    assert "response.output_audio.delta ×20 (48000 bytes)" in lines
    assert len(list(timeline(runs, collapse=False))) == len(s.events)


def test_deltas_that_are_not_json_objects_stay_single_events(tmp_path) -> None:
    s = Session()
    s.ev({"type": "response.output_item.added", "response_id": "r", "output_index": 0,
          "item": {"id": "a", "type": "message", "role": "assistant", "content": [{"type": "text", "text": ""}]}})
    for payload in ("[1]", "{not json", '"x"', '{"delta":"ok"}', '{"delta":"ok"}'):
        s.ev({"type": "response.output_text.delta", "item_id": "a", "response_id": "r"})
        s.events[-1].payload = payload
    runs = assert_same_at_every_seq(write(tmp_path, s.events))
    assert [e.count for e in runs] == [1, 1, 1, 1, 2]


def test_duplicate_seqs_are_not_coalesced(tmp_path) -> None:
    s = Session()
    for i in range(4):
        s.client({"type": "input_audio_buffer.append"}, audio=bytes([i]) * 4)
    s.events[2].seq = 1
    table = write(tmp_path, s.events)
    runs = load.session_events(table)
    assert [e.run for e in runs] == [None] * 4
    assert [a.kind for a in rebuild(runs).anomalies] == ["out_of_order"]


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()))
def test_golden_sessions_fold_alike_at_every_seq(name: str) -> None:
    ((_, table),) = list(load.iter_sessions(GOLDEN / name))
    runs = assert_same_at_every_seq(table)
    assert any(e.run is not None for e in runs)


def test_runs_split_where_a_field_changes_part_or_name_and_fold_alike_twice(tmp_path) -> None:
    s = Session()
    s.ev({"type": "response.created", "response": {"id": "r", "status": "in_progress", "conversation_id": "c"}})
    s.ev({"type": "response.output_item.added", "response_id": "r", "output_index": 0,
          "item": {"id": "a", "type": "message", "role": "assistant", "content": []}})
    for index in (0, 1):
        s.ev({"type": "response.content_part.added", "response_id": "r", "item_id": "a", "content_index": index,
              "part": {"type": "audio", "transcript": ""}})
    at = {"response_id": "r", "item_id": "a", "output_index": 0}
    for index, name, delta in ((0, "output_audio", "x"), (0, "output_audio", "y"), (1, "output_audio", "z"),
                               (1, "audio", "w"), (1, "audio", "v")):
        s.ev({"type": f"response.{name}_transcript.delta", **at, "content_index": index, "delta": delta})
        s.ev({"type": "response.output_audio.delta", **at, "content_index": index}, audio=delta.encode())
    runs = assert_same_at_every_seq(write(tmp_path, s.events))
    assert [e.count for e in runs if e.run is not None] == [4, 2, 4]  # split at the part, then at the beta name
    assert [p.fields["transcript"] for p in rebuild(runs).find_item("a").content] == ["xy", "zwv"]
    rows = load.session_events(write(tmp_path / "again", s.events), coalesce=False)
    again = runs[-1].count  # a run folded onto a state already past it goes row by row (out_of_order)
    assert full(fold(runs[-1:], fold(runs))) == full(fold(rows[-again:], fold(rows)))
