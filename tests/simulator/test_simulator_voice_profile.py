"""The fault profile's `[latency]`, `[transcription]` and `[transport]` tables, on the sans-I/O session (no clocks,
no sockets)."""
from __future__ import annotations

import base64
import json

import pytest

from rtreplay.simulator.faults import TRANSCRIPTION_DRAW, Profile, ProfileError, _parse, draw
from rtreplay.simulator.session import Session
from rtreplay.simulator.demo_app import tone


def events(out: list) -> list[dict]:
    return [e for e in out if isinstance(e, dict)]


def test_first_output_is_held_back_by_base_plus_context():
    profile = Profile("p", latency={"first_output_ms": 300, "per_1k_context_ms": 200})
    s = Session(profile=profile)
    s.start()
    out = events(s.receive(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}}), 10.0))
    assert [e["type"] for e in out] == ["response.created"]  # the first output waits
    response = next(iter(s._active.values()))
    context = sum(response.input_tokens)
    assert context > 0
    assert s.next_due() == pytest.approx(10.0 + (300 + 200 * context / 1000) / 1000)
    later = events(s.advance(s.next_due()))
    assert later[0]["type"] == "response.output_item.added"


def test_no_latency_table_streams_at_once():
    s = Session()
    s.start()
    s.receive(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}}), 5.0)
    assert s.next_due() == 5.0


def test_transcription_fails_at_the_drawn_turns():
    profile = Profile("p", transcription={"fail_rate": 0.5, "code": "audio_unintelligible"})
    s = Session(seed=4, profile=profile)
    s.start()
    s.receive(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": {
            "type": "server_vad", "create_response": False}}}}}), 0.0)
    seen = []
    for turn in range(8):
        pcm = tone(0.5, 8000) + tone(0.5, 0)
        out = events(s.receive(json.dumps({"type": "input_audio_buffer.append",
                                           "audio": base64.b64encode(pcm).decode()}), 0.0))
        kinds = [e["type"] for e in out if e["type"].startswith("conversation.item.input_audio_transcription")]
        seen.append(kinds[-1].rsplit(".", 1)[1])
    want = ["failed" if draw(4, 0, TRANSCRIPTION_DRAW + n) < 0.5 else "completed" for n in range(8)]
    assert seen == want and "failed" in want and "completed" in want


def test_profile_tables_are_checked():
    with pytest.raises(ProfileError, match="non-negative"):
        _parse("x", "[latency]\nfirst_output_ms = -1\n", "toml")
    with pytest.raises(ProfileError, match="fail_rate"):
        _parse("x", "[transcription]\nfail_rate = 2\n", "toml")
    assert _parse("x", "[latency]\nfirst_output_ms = 5\n", "toml").first_output_s(1000) == 0.005


def test_webrtc_transport_plays_instead_of_streaming_audio():
    """No audio deltas; output_audio_buffer.started with the first word, .stopped when the last word has
    played (300 ms a word, after response.done); a clear cuts the item where playback is."""
    s = Session(profile=Profile("p", transport="webrtc"))
    s.start()
    create = json.dumps({"type": "response.create"})
    out = events(s.receive(create, 0.0))
    while s._active:
        out += events(s.advance(s.next_due()))  # every step at t=0: generation is instant here
    kinds = [e["type"] for e in out]
    words = sum(1 for k in kinds if k == "response.output_audio_transcript.delta")
    assert "response.output_audio.delta" not in kinds and words > 1
    assert kinds.count("output_audio_buffer.started") == 1  # with the first word's audio, after its transcript
    assert "output_audio_buffer.stopped" not in kinds and s.next_due() == pytest.approx(words * 0.3)
    assert events(s.advance(words * 0.3 - 0.01)) == []  # the last word still plays
    stopped = events(s.advance(s.next_due()))
    assert [e["type"] for e in stopped] == ["output_audio_buffer.stopped"] and s.next_due() is None
    assert events(s.receive(json.dumps({"type": "output_audio_buffer.clear"}), 99.0)) == []  # nothing plays

    out = events(s.receive(create, 100.0))
    while s._active:
        out += events(s.advance(100.0))
    item = next(e["item"]["id"] for e in out if e["type"] == "response.output_item.added")
    cut = events(s.receive(json.dumps({"type": "output_audio_buffer.clear"}), 100.45))
    assert [(e["type"], e.get("item_id"), e.get("audio_end_ms")) for e in cut] == [
        ("output_audio_buffer.cleared", None, None), ("conversation.item.truncated", item, 450)]
    assert s.next_due() is None  # a cleared buffer never reports stopped
    with pytest.raises(ProfileError, match="transport.kind"):
        _parse("x", '[transport]\nkind = "carrier pigeon"\n', "toml")
