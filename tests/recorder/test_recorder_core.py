"""The recorder core without sockets: numbering, field extraction, redaction, audio cut-out, bad input."""
from __future__ import annotations

import base64
import os

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtreplay.recorder import schema
from rtreplay.recorder.core import SessionRecorder, cut_audio
from rtreplay.recorder.redact import MARK, Redactor, redact_header

COLS = schema.COLUMNS


def rec(record: tuple) -> dict:
    return dict(zip(COLS, record))


def record_of(text: str | bytes, direction: str = schema.CLIENT, audio: str = "keep", is_text: bool = True) -> dict:
    core = SessionRecorder("s1", audio=audio)
    data = text.encode() if isinstance(text, str) else text
    return rec(core.message(direction, data, is_text, 5, 1_700_000_000_000_001_000))


def rebuilt(r: dict) -> str:
    return schema.rebuild_frame(r["payload"], r["audio"], r["audio_at"])


def test_seq_counts_across_directions_and_lifecycle() -> None:
    core = SessionRecorder("s1")
    seqs = [core.lifecycle(schema.PROXY_OPEN, {}, 0, 0)[1],
            core.message(schema.CLIENT, b'{"type":"a"}', True, 0, 0)[1],
            core.message(schema.SERVER, b'{"type":"b"}', True, 0, 0)[1]]
    assert seqs == [0, 1, 2]


def test_ids_are_extracted_from_top_level_and_nested_objects() -> None:
    r = record_of('{"type":"response.done","event_id":"event_1","response":{"id":"resp_1"}}', schema.SERVER)
    assert (r["type"], r["event_id"], r["response_id"], r["item_id"]) == ("response.done", "event_1", "resp_1", None)
    r = record_of('{"type":"conversation.item.added","item":{"id":"item_9"},"response_id":"resp_2"}', schema.SERVER)
    assert (r["item_id"], r["response_id"]) == ("item_9", "resp_2")
    r = record_of('{"type":"response.create","response":{"id":7}}')
    assert r["response_id"] is None
    assert r["ts"] == 1_700_000_000_000_001 and r["mono_ns"] == 5


def test_audio_append_is_cut_out_and_rebuilds_exactly() -> None:
    pcm = os.urandom(4800)
    text = '{"type":"input_audio_buffer.append", "audio":"%s","event_id":"e"}' % base64.b64encode(pcm).decode()
    r = record_of(text)
    assert r["audio"] == pcm
    assert '"audio":""' in r["payload"]
    assert rebuilt(r) == text
    assert r["size"] == len(text)


def test_output_audio_delta_and_item_audio_are_cut_out() -> None:
    pcm = os.urandom(999)
    b64 = base64.b64encode(pcm).decode()
    for text in ('{"type":"response.output_audio.delta","delta":"%s"}' % b64,
                 '{"type":"response.audio.delta","delta":"%s"}' % b64,
                 '{"type":"conversation.item.create","item":{"content":[{"type":"input_audio","audio":"QUJD"},'
                 '{"type":"input_audio","audio":"%s"}]}}' % b64):
        r = record_of(text, schema.SERVER)
        assert r["audio"] == pcm, text[:40]
        assert rebuilt(r) == text


def test_audio_stays_inline_when_reencoding_would_differ() -> None:
    for b64 in ("QR==", "QUJD\\/A==", "not base64!"):  # non-canonical padding bits, JSON escape, junk
        text = '{"type":"input_audio_buffer.append","audio":"%s"}' % b64
        r = record_of(text)
        assert r["audio"] is None and r["audio_at"] is None
        assert r["payload"] == text


def test_audio_drop_keeps_the_place_but_not_the_bytes() -> None:
    text = '{"type":"input_audio_buffer.append","audio":"%s"}' % base64.b64encode(b"abcdef").decode()
    r = record_of(text, audio="drop")
    assert r["audio"] is None
    assert r["payload"][: r["audio_at"]].endswith('"audio":"')


def test_bad_frames_become_records_not_crashes() -> None:
    assert record_of("not json")["type"] == schema.INVALID_JSON
    assert record_of('["a list"]')["payload"] == '["a list"]'
    assert record_of('{"type": 5}')["type"] == schema.INVALID_JSON
    raw = b'{"type":"x","v":"\xff"}'
    r = record_of(raw)
    assert (r["type"], r["payload"], r["audio"], r["audio_at"]) == (schema.INVALID_JSON, "", raw, None)
    r = record_of(b"\x00\x01binary", is_text=False)
    assert (r["type"], r["payload"], r["audio"]) == (schema.BINARY, "", b"\x00\x01binary")


def test_secrets_are_redacted_before_the_record_exists() -> None:
    core = SessionRecorder("s1")
    opened = rec(core.open({"headers": [("Authorization", "Bearer sk-test-fake-0123456789"),
                                        ("api-key", "test-fake-azure-key-1"),
                                        ("Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key.ek_test_fake_9")],
                            "subprotocol": "realtime"}, 0, 0))
    assert "sk-test-fake" not in opened["payload"] and "ek_test_fake" not in opened["payload"]
    assert "test-fake-azure" not in opened["payload"]
    assert f"Bearer {MARK}" in opened["payload"]
    # A learned key is scrubbed wherever it reappears; ek_ tokens and client_secret values always are.
    echoed = rec(core.message(schema.SERVER, b'{"type":"error","message":"bad key sk-test-fake-0123456789"}', True, 0, 0))
    assert "sk-test-fake" not in echoed["payload"]
    minted = rec(core.message(schema.SERVER, b'{"type":"x","client_secret":{"value":"test-secret-value","expires_at":1},'
                                             b'"k":"ek_test_fake_abcdefgh"}', True, 0, 0))
    assert "test-secret-value" not in minted["payload"] and "ek_test_fake" not in minted["payload"]
    assert orjson.loads(minted["payload"])["client_secret"] == {"value": MARK, "expires_at": 1}


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = '{"type":"x","note":"week_1234567 is fine","client_secret_hint":"none"}'
    assert Redactor().text(text) == text
    assert redact_header("User-Agent", "Bearer-ish agent") == "Bearer-ish agent"
    assert redact_header("Authorization", "opaque") == MARK


@settings(max_examples=100, deadline=None)
@given(pcm=st.binary(max_size=300), before=st.text(max_size=20), after=st.text(max_size=20))
def test_any_frame_rebuilds_byte_for_byte(pcm: bytes, before: str, after: str) -> None:
    text = orjson.dumps({"type": "input_audio_buffer.append", "x": before, "audio": base64.b64encode(pcm).decode(),
                         "y": after}).decode()
    r = record_of(text)
    assert rebuilt(r) == Redactor().text(text)
    cut = cut_audio(text, base64.b64encode(pcm).decode())
    assert (cut is None) == (pcm == b"")


SECRET = "sk-learned-key-0123456789"
_PIECES = st.sampled_from([SECRET, "sk-", "ek_", "abcdefghijklmnopqrstuv", "0123456789", "\\u0073", "\\n", '\\"', "\\\\",
                           '"api_key":"v"', "x", "-", "_", " ", '"', "é"])


@st.composite
def _raw_string(draw) -> str:
    """The inside of a JSON string as a client may write it: escapes included (the decoded value differs)."""
    raw = "".join(draw(st.lists(_PIECES, max_size=8)))
    try:
        orjson.loads(f'"{raw}"')
    except orjson.JSONDecodeError:
        raw = raw.replace("\\", "").replace('"', "")
    return raw


@settings(max_examples=300, deadline=None)
@given(kind=st.one_of(st.just("response.output_audio.delta"), _raw_string()), event_id=_raw_string(),
       item_id=_raw_string(), response_id=_raw_string(), note=_raw_string(),
       pcm=st.one_of(st.none(), st.binary(min_size=3, max_size=60), st.binary(min_size=3000, max_size=3000)))
@example(kind="response.output_audio.delta", event_id="e", item_id="i", response_id="sk-\\u0073abcdefghijklmnopqrstuv",
         note="", pcm=b"\x01" * 60)  # the audio cut in the text
@example(kind="response.output_audio.delta", event_id="e", item_id="i", response_id="sk-\\u0073abcdefghijklmnopqrstuv",
         note="", pcm=b"\x01" * 3000)  # the audio found by the scan of large messages
def test_the_type_and_ids_are_redacted_as_their_decoded_values(kind, event_id, item_id, response_id, note, pcm) -> None:
    """The type and ids come from the decoded event: each is exactly its decoded value, redacted, whatever escapes
    the text used to spell it — also when the payload itself needed no redaction, and around an audio cut."""
    audio = f',"delta":"{base64.b64encode(pcm).decode()}"' if pcm else ""
    text = (f'{{"type":"{kind or "x"}","event_id":"{event_id}","item_id":"{item_id}",'
            f'"response_id":"{response_id}","note":"{note}"{audio}}}')
    core = SessionRecorder("s1")
    core.redactor.learn(SECRET)
    r = rec(core.message(schema.SERVER, text.encode(), True, 0, 0))
    event = orjson.loads(text)
    for column, value in (("type", event["type"]), ("event_id", event["event_id"]), ("item_id", event["item_id"]),
                          ("response_id", event["response_id"])):
        assert r[column] == (core.redactor.text(value) if value else value), column
        assert SECRET not in (r[column] or "")
