"""Audio messages skip the full JSON parse (`rtreplay.recorder.core._top_level_audio`): the record must be the one
the general path gives, for any shape of audio event, and the frame must rebuild byte for byte."""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.recorder import core
from rtreplay.recorder.schema import CLIENT, SERVER, rebuild_frame

AUDIO_TYPES = [("input_audio_buffer.append", "audio", CLIENT), ("response.output_audio.delta", "delta", SERVER),
               ("response.audio.delta", "delta", SERVER)]
extra_values = st.one_of(st.none(), st.integers(), st.text(max_size=30),
                         st.sampled_from(["ek_fake_secret_value_1234567890abcdef", "a\"quote", "\\u00e9", "é"]))


@st.composite
def audio_frames(draw) -> bytes:
    kind, field, direction = draw(st.sampled_from(AUDIO_TYPES))
    audio = draw(st.binary(min_size=800, max_size=4000))
    b64 = base64.b64encode(audio).decode()
    if draw(st.booleans()):  # a non-canonical or escaped value must not be cut wrongly
        b64 = draw(st.sampled_from([b64.rstrip("="), b64[:-4] + "\\u0041" + b64[-3:], b64 + "==", "not base64!" * 120]))
    fields = {"type": kind, field: b64, "event_id": draw(st.text(max_size=20))}
    fields |= draw(st.dictionaries(st.sampled_from(["item_id", "response_id", "x", "audio", "delta"]), extra_values,
                                   max_size=3))
    fields[field] = b64  # the audio field keeps the audio even when an extra key collided with it
    items = list(fields.items())
    order = draw(st.permutations(range(len(items))))
    text = "{" + ",".join(json.dumps(items[i][0]) + ":" + (
        '"' + items[i][1] + '"' if items[i][0] == field else json.dumps(items[i][1], ensure_ascii=draw(st.booleans())))
        for i in order) + "}"
    if draw(st.booleans()):  # duplicate key: JSON's last one wins
        text = text[:-1] + f',"{field}":"{draw(st.text(max_size=8, alphabet="AB="))}"}}'
    return text.encode(), direction


@settings(max_examples=300, deadline=None)
@given(frame=audio_frames())
def test_fast_path_gives_the_general_paths_record(frame, monkeypatch_session) -> None:
    data, direction = frame
    fast = core.SessionRecorder("s").message(direction, data, True, 1, 2)
    monkeypatch_session.setattr(core, "_FAST_MIN_SIZE", 1 << 40)
    general = core.SessionRecorder("s").message(direction, data, True, 1, 2)
    monkeypatch_session.undo()
    assert fast == general
    payload, audio, audio_at = fast[9], fast[10], fast[11]
    if "ek_fake" not in data.decode("utf-8", "replace"):
        assert rebuild_frame(payload, audio, audio_at).encode() == data


@pytest.fixture(scope="module")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
