"""Properties of the fold (Hypothesis) and of loading sessions from a real Parquet archive."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.reduce import apply, fold
from rtreplay.analyzer.state.session import Event, SessionState
from rtreplay.analyzer.state.timeline import History, rebuild, state_at, states_before
from rtreplay.recorder import archive, schema
from events_factory import Session

IDS = st.sampled_from(["a", "b", "c", "d", "r1", "r2", None, "root", 7])
TYPES = st.sampled_from(sorted({
    "conversation.item.added", "conversation.item.done", "conversation.item.created", "conversation.item.deleted",
    "conversation.item.truncated", "conversation.item.retrieved", "response.created", "response.done",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.output_text.delta", "response.output_text.done", "response.output_audio.delta",
    "response.output_audio_transcript.delta", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "input_audio_buffer.append", "input_audio_buffer.committed",
    "input_audio_buffer.cleared", "conversation.item.input_audio_transcription.completed", "error",
    "response.create", "session.created", "mystery.event", "invalid.json",
}))
JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4) | IDS,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                        ["id", "type", "content", "text", "status", "output", "conversation_id", "role"]), inner, max_size=4),
                    max_leaves=12)


@st.composite
def raw_events(draw) -> list[Event]:
    """Arbitrary streams: plausible types with random, missing or wrong-typed fields, any order."""
    out = []
    for seq in range(draw(st.integers(0, 30))):
        data = {"type": draw(TYPES)}
        for key in draw(st.lists(st.sampled_from(["item", "item_id", "previous_item_id", "response", "response_id",
                                                  "delta", "text", "content_index", "audio_end_ms", "error",
                                                  "session", "arguments", "transcript"]), max_size=5)):
            data[key] = draw(st.one_of(IDS, JSON, st.fixed_dictionaries({"id": IDS}, optional={
                "type": st.sampled_from(["message", "function_call"]), "content": JSON, "conversation_id": IDS})))
        audio = draw(st.one_of(st.none(), st.binary(max_size=8)))
        out.append(Event.of(draw(st.sampled_from([seq, seq, seq, 0])), data, audio=audio,
                            direction=draw(st.sampled_from(["client", "server"]))))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events())
def test_arbitrary_streams_never_raise_and_keep_the_order_consistent(events) -> None:
    state = SessionState()
    for e in events:
        before = list(state.order)
        apply(state, e)
        assert len(state.order) == len(set(state.order)) == len(state.items)
        prev = e.data.get("previous_item_id")
        item = e.data.get("item")
        if e.type == "conversation.item.done":  # finishes an item, never places it: its previous_item_id is no position
            assert state.order == before
        upsert = e.type in ("conversation.item.added", "conversation.item.created")
        if upsert and isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] in state.items:
            i = state.order.index(item["id"])
            if prev is None and "previous_item_id" in e.data or prev == "root":
                assert i == 0
            elif isinstance(prev, str) and prev in state.items and prev != item["id"]:
                assert state.order[i - 1] == prev
    rebuild(events)  # finish() never raises either


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events(), st.data())
def test_folding_from_a_snapshot_equals_one_pass(events, data) -> None:
    cut = data.draw(st.integers(0, len(events)))
    one_pass = fold(events).to_json(with_audio=True)
    snapshot = fold(events[:cut]).copy()
    assert fold(events[cut:], snapshot).to_json(with_audio=True) == one_pass


def _voice_session() -> Session:
    s = Session()
    s.session_created()
    s.audio_turn("u1", "a1", "r1", None, [bytes([i]) * 960 for i in range(30)], [b"\x07" * 2400] * 5)
    s.client({"type": "response.create", "event_id": "e1", "response": {"conversation": "none"}})
    s.response("r2", "o1", None, oob=True, text="side answer")
    s.audio_turn("u2", "a2", "r3", "a1", [bytes([i]) * 960 for i in range(20)], [b"\x08" * 2400] * 3)
    for i in range(7):
        s.client({"type": "input_audio_buffer.append"}, audio=bytes([100 + i]) * 960)
    return s


def _write(tmp_path, events: list[Event]) -> str:
    sid = schema.new_session_id(1_790_000_000_000_000_000)
    now = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
    rows = {
        "session_id": [sid] * len(events), "seq": [e.seq for e in events], "ts": [now] * len(events),
        "mono_ns": [e.mono_ns for e in events], "direction": [e.direction for e in events],
        "type": [e.type for e in events], "event_id": [e.data.get("event_id") for e in events],
        "response_id": [e.response_id for e in events], "item_id": [e.item_id for e in events],
        "payload": [e.payload for e in events], "audio": [e.audio for e in events],
        "audio_at": [0 if e.audio is not None else None for e in events], "size": [len(e.payload) for e in events],
    }
    archive.write_parquet(pa.table(rows, schema=schema.EVENT_SCHEMA), archive.parquet_path(tmp_path, sid))
    return sid


def test_loaded_sessions_fold_like_their_events_at_every_seq(tmp_path) -> None:
    s = _voice_session()
    sid = _write(tmp_path, s.events)
    loaded = load.session_events(load.read_session(tmp_path, sid))
    assert len(loaded) < len(s.events)  # append runs are collapsed
    history = History(loaded, sid, every=5)
    for seq in range(len(s.events)):
        expected = state_at(s.events, seq, sid).to_json(with_audio=True)
        assert state_at(loaded, seq, sid).to_json(with_audio=True) == expected
        assert history.state_at(seq).to_json(with_audio=True) == expected
    befores = states_before(loaded, [0, 5, 31, 40, len(s.events)], sid)
    for seq, st_ in befores.items():
        assert st_.to_json(with_audio=True) == state_at(s.events, seq - 1, sid).to_json(with_audio=True)
    assert history.final.to_json() == rebuild(s.events, sid).to_json()
    assert load.events(tmp_path).collect().height == len(s.events)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events())
def test_a_done_never_adds_an_item(events) -> None:
    """Only conversation.item.added / .created put an item in the conversation (protocol §11.1)."""
    state = SessionState()
    for e in events:
        before = set(state.items)
        apply(state, e)
        if e.type == "conversation.item.done":
            assert set(state.items) <= before


def _response_events(rid: str, iid: str, oob: bool, prev: str | None, meta: dict | None) -> list[dict]:
    """One text response as the real GA server streams it (§11.1, §11.3): an out-of-band output gets
    conversation.item.done with previous_item_id null and no .added."""
    conv = None if oob else "conv_1"
    base = {"object": "realtime.response", "id": rid, "conversation_id": conv, "metadata": meta}
    item = {"id": iid, "type": "message", "role": "assistant", "content": [], "phase": "final_answer"}
    full = {**item, "status": "completed", "content": [{"type": "output_text", "text": iid}]}
    out = [{"type": "response.created", "response": {**base, "status": "in_progress", "output": []}},
           {"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item}]
    if not oob:
        out.append({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
    out += [{"type": "response.content_part.added", "response_id": rid, "item_id": iid, "output_index": 0,
             "content_index": 0, "part": {"type": "output_text", "text": ""}},
            {"type": "response.output_text.delta", "response_id": rid, "item_id": iid, "output_index": 0,
             "content_index": 0, "delta": iid, "obfuscation": "x9"},
            {"type": "conversation.item.done", "previous_item_id": None if oob else prev, "item": full},
            {"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": full},
            {"type": "response.done", "response": {**base, "status": "completed", "output": [full]}}]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.lists(st.booleans(), min_size=14, max_size=14)), min_size=1, max_size=4))
def test_vad_and_out_of_band_responses_interleaved_like_the_real_server(turns) -> None:
    """Per turn: the user item, server VAD's response and an out-of-band request whose own events interleave
    with the VAD response's in any order (its request sent before or after the VAD response.created). The
    conversation holds exactly the user items and VAD answers; each out-of-band response belongs to its request."""
    s = Session()
    prev: str | None = None
    conversation, oob_requests = [], {}
    for n, (request_first, picks) in enumerate(turns):
        user = f"item_u{n}"
        s.ev({"type": "input_audio_buffer.committed", "item_id": user, "previous_item_id": prev})
        s.ev({"type": "conversation.item.added", "previous_item_id": prev, "item": {
            "id": user, "type": "message", "role": "user", "content": [{"type": "input_audio"}]}})
        meta = {"turn": str(n)}
        vad = _response_events(f"resp_v{n}", f"item_a{n}", False, user, None)
        oob = _response_events(f"resp_o{n}", f"item_o{n}", True, None, meta)
        request = {"type": "response.create", "response": {"conversation": "none", "metadata": meta,
                                                          "input": [{"type": "item_reference", "id": user}]}}
        if request_first:
            oob_requests[f"resp_o{n}"] = s.client(request).seq
        merged = [vad.pop(0)]  # the VAD response.created first: its turn was committed first (§11.2)
        if not request_first:
            oob_requests[f"resp_o{n}"] = s.client(request).seq
        for pick in picks:
            if (pick and vad) or not oob:
                merged.append(vad.pop(0)) if vad else None
            else:
                merged.append(oob.pop(0))
        merged += vad + oob
        for e in merged:
            s.ev(e)
        conversation += [user, f"item_a{n}"]
        prev = f"item_a{n}"
    state = rebuild(s.events, strict=True)
    assert state.order == conversation
    for rid, seq in oob_requests.items():
        r = state.responses[rid]
        assert r.out_of_band and r.request_seq == seq and r.output[0] not in state.items
        assert state.outputs[r.output[0]].fields["phase"] == "final_answer"  # unknown fields kept
    assert all(r.request_seq is None for rid, r in state.responses.items() if rid.startswith("resp_v"))
