"""State rebuild: the reducer's handlers through `fold`/`rebuild`, with hand-written and real events."""
from __future__ import annotations

import typing
from pathlib import Path

import orjson
import pytest

from rtreplay.analyzer.state.reduce import HANDLERS, AnomalyError, fold
from rtreplay.analyzer.state.session import Event
from rtreplay.analyzer.state.timeline import rebuild
from events_factory import Session

BETA = Path(__file__).resolve().parents[1] / "data" / "real" / "beta-text-response.jsonl"


def kinds(state) -> list[str]:
    return [a.kind for a in state.anomalies]


def test_items_go_after_previous_item_id_head_on_null_and_root() -> None:
    s = Session()
    s.add("a", None)
    s.add("b", "a")
    s.add("c", "a")  # between a and b
    s.add("d", None)  # head
    s.client({"type": "conversation.item.create", "previous_item_id": "root", "item": {"id": "e"}})
    s.add("e", "root")
    state = rebuild(s.events)
    assert state.order == ["e", "d", "a", "c", "b"]
    assert state.anomalies == []


def test_delete_removes_and_unknown_delete_is_an_anomaly() -> None:
    s = Session()
    s.add("a", None)
    s.add("b", "a")
    s.ev({"type": "conversation.item.deleted", "item_id": "a"})
    s.ev({"type": "conversation.item.deleted", "item_id": "zz"})
    state = rebuild(s.events)
    assert state.order == ["b"]
    assert kinds(state) == ["delete_unknown_item"]


def test_text_response_rebuilt_and_done_value_is_authoritative() -> None:
    s = Session()
    s.add("u", None, text="hello?")
    s.response("r1", "i1", "u", text="Hi there!")
    s.events.insert(-4, Event.of(999, {"type": "nothing"}))  # placeholder removed below
    s.events.pop(-5)
    s.ev({"type": "response.output_text.delta", "response_id": "r1", "item_id": "i1", "content_index": 0, "delta": "GARBLE"})
    s.ev({"type": "response.output_text.done", "response_id": "r1", "item_id": "i1", "content_index": 0, "text": "Hi there!"})
    for i, e in enumerate(s.events):
        e.seq = i
    state = rebuild(s.events)
    assert [it.text() for it in state.conversation()] == ["hello?", "Hi there!"]
    assert state.items["i1"].to_json(False)["content"] == [{"type": "output_text", "text": "Hi there!"}]
    r = state.responses["r1"]
    assert (r.status, r.out_of_band, r.output, r.usage) == ("completed", False, ["i1"], {"total_tokens": 3})


def test_function_call_arguments_from_deltas() -> None:
    s = Session()
    s.response("r1", "fc", None, function="lookup")
    state = rebuild(s.events)
    assert state.items["fc"].fields["arguments"] == '{"a":1}'
    assert state.items["fc"].text() == 'lookup({"a":1})'


def test_out_of_band_output_stays_under_its_response() -> None:
    s = Session()
    s.add("u", None)
    s.client({"type": "response.create", "response": {"conversation": "none", "metadata": {"k": "v"}}})
    s.response("r_oob", "o1", None, text="summary", oob=True, metadata={"k": "v"})
    state = rebuild(s.events)
    assert state.order == ["u"]
    r = state.responses["r_oob"]
    assert r.out_of_band and r.request == {"conversation": "none", "metadata": {"k": "v"}} and r.request_seq == 2
    assert state.outputs["o1"].text() == "summary"
    assert state.anomalies == []


def test_audio_turn_truncation_and_late_transcription() -> None:
    s = Session()
    s.session_created()
    s.audio_turn("u1", "a1", "r1", None, [b"\x01" * 960, b"\x02" * 960], [b"\x03" * 4800, b"\x04" * 4800])
    s.ev({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1", "content_index": 0,
          "transcript": "hello there"})
    state = rebuild(s.events)
    user, asst = state.items["u1"], state.items["a1"]
    assert user.content[0].audio_bytes() == b"\x01" * 960 + b"\x02" * 960
    assert user.content[0].fields["transcript"] == "hello there"
    assert asst.content[0].audio_bytes() == b"\x03" * 4800 + b"\x04" * 4800
    assert asst.content[0].fields["transcript"] == "sure thing"
    assert state.input_audio == []
    s.client({"type": "conversation.item.truncate", "item_id": "a1", "content_index": 0, "audio_end_ms": 150})
    s.ev({"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0, "audio_end_ms": 150})
    state = rebuild(s.events)
    part = state.items["a1"].content[0]
    assert part.audio_bytes() == b"\x03" * 4800 + b"\x04" * (150 * 48 - 4800)
    assert part.fields["transcript"] == ""


def test_transcription_before_its_item_is_kept_until_it_arrives() -> None:
    s = Session()
    s.ev({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1", "content_index": 0,
          "transcript": "early"})
    s.audio_turn("u1", "a1", "r1", None, [b"\x00" * 10], [b"\x00" * 10])
    state = rebuild(s.events)
    assert state.items["u1"].content[0].fields["transcript"] == "early"


def test_surprises_become_anomalies_and_strict_raises() -> None:
    s = Session()
    s.ev({"type": "response.unheard_of"})
    s.ev({"type": "response.output_text.delta", "item_id": "ghost", "delta": "x"})
    s.ev({"type": "response.created", "response": {"id": "r9", "status": "in_progress"}})
    s.ev({"type": "conversation.item.added", "item": "not an object"})
    state = rebuild(s.events)
    assert kinds(state) == ["unknown_type", "delta_for_unknown_item", "malformed", "response_without_done"]
    with pytest.raises(AnomalyError):
        fold(s.events, strict=True)


def test_beta_recording_rebuilds() -> None:
    events = [Event.of(i, orjson.loads(line)) for i, line in enumerate(BETA.read_text().splitlines())]
    state = rebuild(events)
    assert state.order == ["item_C1PSbur7hgTONg4H8lKhl"]
    item = state.items["item_C1PSbur7hgTONg4H8lKhl"]
    done_text = next(e.data["text"] for e in events if e.type == "response.text.done")
    assert item.to_json(False)["content"] == [{"type": "output_text", "text": done_text}]
    assert item.fields["role"] == "assistant"
    assert state.responses["resp_C1PSbsyhar4EpjNZg9fkB"].status == "completed"
    # The printout elided nested objects (`content: [null]`, `output: [null]`): flagged, the rest rebuilt.
    assert kinds(state) == ["malformed", "malformed"]


def test_beta_names_rebuild_like_ga_names() -> None:
    ga, beta = Session(), Session()
    for s, is_beta in ((ga, False), (beta, True)):
        s.add("u", None, beta=is_beta)
        s.response("r", "a", "u", text="same words", beta=is_beta)
    assert [i.to_json() for i in rebuild(ga.events).conversation()] == [i.to_json() for i in rebuild(beta.events).conversation()]


def _sdk_types(union: object) -> set[str]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return {v for m in typing.get_args(union) for v in typing.get_args(m.model_fields["type"].annotation)}


def test_every_sdk_event_type_has_a_handler() -> None:
    from openai.types.realtime import realtime_client_event, realtime_server_event

    sdk = _sdk_types(realtime_client_event.RealtimeClientEvent) | _sdk_types(realtime_server_event.RealtimeServerEvent)
    assert len(sdk) >= 57
    assert sorted(sdk - set(HANDLERS)) == []


def test_failed_transcription_shows_on_its_item_and_in_errors() -> None:
    s = Session()
    s.ev({"type": "conversation.item.added", "previous_item_id": None, "item": {
        "id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}})
    error = {"type": "transcription_error", "code": "audio_unintelligible", "message": "The audio could not be transcribed."}
    s.ev({"type": "conversation.item.input_audio_transcription.failed", "item_id": "u1", "content_index": 0,
          "error": error})
    state = rebuild(s.events, strict=True)
    assert state.items["u1"].content[0].fields["transcription_error"] == error
    assert state.errors == [(1, "conversation.item.input_audio_transcription.failed", error)]
    assert state.to_json()["errors"][0]["error"]["code"] == "audio_unintelligible"


def test_transcription_events_before_their_item_are_held_until_it_is_added() -> None:
    """Input transcription runs apart from the item (protocol §9.3: asynchronous): a delta, a completion or a
    failure that comes before `conversation.item.added` waits for the item and is applied, in order, when
    it arrives; it is no anomaly. The failure is in `errors` at once."""
    s = Session()
    error = {"type": "transcription_error", "code": "audio_unintelligible", "message": "The audio could not be transcribed."}
    s.ev({"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": "u1"})
    s.ev({"type": "conversation.item.input_audio_transcription.delta", "item_id": "u1", "content_index": 0, "delta": "he"})
    s.ev({"type": "conversation.item.input_audio_transcription.delta", "item_id": "u1", "content_index": 0, "delta": "llo"})
    s.ev({"type": "conversation.item.input_audio_transcription.failed", "item_id": "u2", "content_index": 0,
          "error": error})
    for iid, prev in (("u1", None), ("u2", "u1")):
        s.ev({"type": "conversation.item.added", "previous_item_id": prev, "item": {
            "id": iid, "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}})
    state = rebuild(s.events, strict=True)
    assert state.items["u1"].content[0].fields["transcript"] == "hello"
    assert state.items["u2"].content[0].fields["transcription_error"] == error
    assert "transcript" not in state.items["u2"].content[0].fields or state.items["u2"].content[0].fields["transcript"] is None
    assert state.errors == [(3, "conversation.item.input_audio_transcription.failed", error)]


def test_transcription_held_for_an_item_never_added_is_an_anomaly_at_the_end() -> None:
    s = Session()
    s.ev({"type": "conversation.item.input_audio_transcription.completed", "item_id": "ghost", "content_index": 0,
          "transcript": "lost"})
    state = rebuild(s.events)
    assert kinds(state) == ["transcription_for_unknown_item"]


def test_idle_timeout_commits_its_segment_like_end_of_speech() -> None:
    """timeout_triggered carries the segment the following commit takes (protocol §2.3)."""
    s = Session()
    s.session_created()
    s.client({"type": "input_audio_buffer.append"}, audio=bytes(range(200)) * 48)  # 200 ms of pcm16 24 kHz
    s.ev({"type": "input_audio_buffer.timeout_triggered", "item_id": "u1", "audio_start_ms": 50, "audio_end_ms": 150})
    s.ev({"type": "input_audio_buffer.committed", "item_id": "u1", "previous_item_id": None})
    s.ev({"type": "conversation.item.added", "previous_item_id": None, "item": {
        "id": "u1", "type": "message", "role": "user", "content": [{"type": "input_audio"}]}})
    state = rebuild(s.events, strict=True)
    assert len(state.items["u1"].content[0].audio_bytes()) == 100 * 48
    assert state.input_audio_bytes() == (bytes(range(200)) * 48)[150 * 48:]


def test_a_done_with_a_null_predecessor_does_not_move_its_item() -> None:
    """The real server (a SIP call's sideband, tests/data/real/ga-sip-sideband-barge-ins line 20) sends
    conversation.item.done with previous_item_id null for a function_call it added after the user's item."""
    s = Session()
    s.add("u1", None)
    call = {"id": "f1", "type": "function_call", "status": "in_progress", "name": "f", "call_id": "c1", "arguments": ""}
    s.ev({"type": "conversation.item.added", "previous_item_id": "u1", "item": call})
    s.ev({"type": "conversation.item.done", "previous_item_id": None,
          "item": {**call, "status": "completed", "arguments": "{}"}})
    state = rebuild(s.events, strict=True)
    assert state.order == ["u1", "f1"]
    assert state.items["f1"].fields["status"] == "completed" and state.items["f1"].fields["arguments"] == "{}"


def test_out_of_band_output_done_leaves_the_conversation_alone() -> None:
    """Protocol §11.1: the real server sends conversation.item.done (previous_item_id null) for an out-of-band
    output, never .added; the output stays the response's, and assistant messages keep `phase`, in order."""
    s = Session()
    s.add("u1", None)
    s.client({"type": "response.create", "response": {"conversation": "none", "metadata": {"k": "1"}}})
    base = {"id": "r1", "conversation_id": None, "metadata": {"k": "1"}}
    s.ev({"type": "response.created", "response": {**base, "status": "in_progress", "output": []}})
    for n, phase in enumerate(["commentary", "final_answer"]):
        item = {"id": f"o{n}", "type": "message", "role": "assistant", "phase": phase, "content": []}
        s.ev({"type": "response.output_item.added", "response_id": "r1", "output_index": n, "item": item})
        s.ev({"type": "conversation.item.done", "previous_item_id": None, "item": {**item, "status": "completed"}})
        s.ev({"type": "response.output_item.done", "response_id": "r1", "output_index": n, "item": item})
    s.ev({"type": "response.done", "response": {**base, "status": "completed", "output": [],
                                                "usage": {"output_token_details": {"reasoning_tokens": 7}}}})
    state = rebuild(s.events, strict=True)
    r = state.responses["r1"]
    assert state.order == ["u1"] and r.out_of_band and r.request_seq == 2
    assert [(i, state.outputs[i].fields["phase"], state.outputs[i].fields["status"]) for i in r.output] == [
        ("o0", "commentary", "completed"), ("o1", "final_answer", "completed")]
    assert r.usage["output_token_details"]["reasoning_tokens"] == 7


def test_a_partial_log_pairs_its_response_done_by_the_metadata_echo() -> None:
    s = Session()
    s.client({"type": "response.create", "response": {"metadata": {"k": "2"}}})
    s.client({"type": "response.create", "response": {"conversation": "none", "metadata": {"k": "1"}}})
    s.ev({"type": "response.done", "response": {"id": "r1", "status": "completed", "conversation_id": None,
                                                "metadata": {"k": "1"}, "output": []}})
    state = rebuild(s.events)
    assert state.responses["r1"].request_seq == 1 and state.responses["r1"].out_of_band
    assert kinds(state) == ["unknown_response"]
