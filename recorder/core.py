"""The recorder core: WebSocket messages in, archive records out. No I/O, no clock, no event loop.

One `SessionRecorder` per session. It numbers records (`seq`, both directions merged, in the order it is
called), extracts `type`/`event_id`/`response_id`/`item_id`, redacts secrets (`rtreplay.recorder.redact`) and cuts
audio base64 out of the payload. A record is a tuple in `rtreplay.recorder.schema.COLUMNS` order, with `ts` as
integer microseconds since the epoch (UTC).

Payload rules (DESIGN.md, "The archive"):
  - a text frame is recorded as its text, redacted; `type` is its JSON `type`, or `invalid.json` when it
    is not a JSON object with a string `type`;
  - a text frame that is not valid UTF-8 is `invalid.json` with an empty payload and its raw bytes in
    `audio` (`audio_at` null), like a binary frame — still lossless;
  - a binary frame is `binary`, empty payload, its bytes in `audio`;
  - audio is cut only where `payload[:audio_at] + base64(audio) + payload[audio_at:]` gives back the
    redacted text exactly; otherwise it stays inline. With audio="drop" the bytes are not kept and
    `audio_at` still marks the place.
  - `size` is the message's length in bytes as the peers exchanged it (after reassembling fragments and
    inflating permessage-deflate, before redaction).
"""
from __future__ import annotations

import binascii
from typing import Any

import orjson
import pybase64

from rtreplay.recorder import redact
from rtreplay.recorder.schema import BINARY, CLIENT, INVALID_FRAME, INVALID_JSON, PROXY, PROXY_OPEN, SERVER

Record = tuple[Any, ...]
_MAX_INT32 = (1 << 31) - 1  # the `size` column's type

# Event types whose base64 audio sits in a top-level field, and that field.
_TOP_LEVEL_AUDIO = {
    "input_audio_buffer.append": "audio",
    "response.output_audio.delta": "delta",
    "response.audio.delta": "delta",  # beta name
}
# Where `response_id` comes from `response.id` instead of a top-level `response_id`.
_RESPONSE_OBJECT_TYPES = frozenset({"response.created", "response.done"})


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _audio_value(kind: str, event: dict[str, Any]) -> str | None:
    """The base64 audio string this event carries, if any (the largest, for items with several parts)."""
    field = _TOP_LEVEL_AUDIO.get(kind)
    if field is not None:
        return _str_or_none(event.get(field))
    item = event.get("item")
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return None  # conversation.item.create / .retrieved (and any other event carrying an item)
    parts = [p["audio"] for p in item["content"] if isinstance(p, dict) and isinstance(p.get("audio"), str)]
    return max(parts, key=len, default=None)


def cut_audio(text: str, b64: str) -> tuple[str, bytes, int] | None:
    """(payload without `b64`, decoded audio, offset) if cutting `b64` out of `text` is lossless, else None.

    Lossless needs the base64 to appear in the text verbatim (no JSON escapes inside it) and to be
    canonical, so that re-encoding the decoded bytes gives the same characters.
    """
    if not b64:
        return None
    # Locate by a short prefix and confirm with a plain comparison: much cheaper than searching for
    # the whole (often 32 KB+) value.
    at = text.find(b64[:64])
    if at < 0 or not text.startswith(b64, at):
        at = text.find(b64)
        if at < 0:
            return None
    try:
        audio = pybase64.b64decode(b64, validate=True)  # SIMD: ~40x CPython's binascii on 32 KB
    except (binascii.Error, ValueError):
        return None
    # Validated decoding accepts only full, well-padded quanta; the last one may still carry non-zero
    # padding bits ("QR==" decodes like "QQ=="), so re-encode it to check.
    tail_bytes = len(audio) - (len(b64) // 4 - 1) * 3
    if binascii.b2a_base64(audio[len(audio) - tail_bytes:], newline=False).decode() != b64[-4:]:
        return None
    return text[:at] + text[at + len(b64):], audio, at


# Audio events are mostly their base64: rather than parse 32 KB of JSON to find it, `_top_level_audio`
# finds the string by its key, and parses only the rest of the message to check that it found the right one.
_FAST_MIN_SIZE = 1024
_AUDIO_KEYS = ((b'"audio":"', "audio"), (b'"delta":"', "delta"))
_CUT_MARK = b"rtreplay.cut"


def _top_level_audio(data: bytes) -> tuple[dict[str, Any], str, str, bytes] | None:
    """(event without its audio, text before the base64, text after it, decoded audio) when `data` is an
    event whose top-level audio field holds canonical base64 written verbatim; None means "not sure":
    the caller then takes the general path, which gives the same record whenever this one does.

    The check: with the base64 replaced by a mark, the rest must parse as an event of a type that carries
    audio in exactly that field, whose value is the mark (so the string cut is the field's value, even
    with duplicate keys), and the mark must appear nowhere else.
    """
    for key, field in _AUDIO_KEYS:
        start = data.find(key)
        if start >= 0:
            break
    else:
        return None
    start += len(key)
    end = data.find(b'"', start)
    if end <= start:
        return None
    head, tail = data[:start], data[end:]
    if _CUT_MARK in head or _CUT_MARK in tail:
        return None
    try:
        event = orjson.loads(head + _CUT_MARK + tail)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get(field) != _CUT_MARK.decode():
        return None
    kind = event.get("type")
    if not isinstance(kind, str) or _TOP_LEVEL_AUDIO.get(kind) != field:
        return None
    b64 = memoryview(data)[start:end]
    try:
        audio = pybase64.b64decode(b64, validate=True)
        before, after = head.decode("utf-8"), tail.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    # As in `cut_audio`: the last quantum must re-encode to the same characters.
    tail_bytes = len(audio) - (len(b64) // 4 - 1) * 3
    if binascii.b2a_base64(audio[len(audio) - tail_bytes:], newline=False) != b64[-4:]:
        return None
    return event, before, after, audio


class SessionRecorder:
    """Turns one session's messages and lifecycle facts into records. Not thread-safe; no I/O.

    `direction` is `rtreplay.recorder.schema.CLIENT` or `SERVER`; `mono_ns`/`wall_ns` are the caller's clocks
    (monotonic and epoch nanoseconds) at the moment the frame was received.
    """

    def __init__(self, session_id: str, audio: str = "keep", redactor: redact.Redactor | None = None) -> None:
        if audio not in ("keep", "drop"):
            raise ValueError(f"audio must be 'keep' or 'drop', not {audio!r}")
        self.session_id = session_id
        self.keep_audio = audio == "keep"
        self.redactor = redactor or redact.Redactor()
        self._seq = 0

    def _record(self, mono_ns: int, wall_ns: int, direction: str, kind: str, event_id: str | None,
                response_id: str | None, item_id: str | None, payload: str, audio: bytes | None,
                audio_at: int | None, size: int) -> Record:
        seq = self._seq
        self._seq += 1
        return (self.session_id, seq, wall_ns // 1000, mono_ns, direction, kind, event_id, response_id,
                item_id, payload, audio, audio_at, size)

    def message(self, direction: str, data: bytes, is_text: bool, mono_ns: int, wall_ns: int) -> Record:
        """The record of one complete WebSocket message (text or binary) seen going `direction`."""
        if direction not in (CLIENT, SERVER):
            raise ValueError(f"direction must be client or server, not {direction!r}")
        size = len(data)
        if not is_text:
            return self._record(mono_ns, wall_ns, direction, BINARY, None, None, None, "",
                                self.redactor.data(bytes(data)), None, size)
        found = _top_level_audio(data) if size >= _FAST_MIN_SIZE else None
        if found is not None:
            event, before, after, audio = found
            return self._event_record(direction, size, mono_ns, wall_ns, event, (before, after, audio))
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return self._record(mono_ns, wall_ns, direction, INVALID_JSON, None, None, None, "",
                                self.redactor.data(bytes(data)), None, size)
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            event = None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            text = self.redactor.text(text)
            return self._record(mono_ns, wall_ns, direction, INVALID_JSON, None, None, None, text, None, None, size)
        b64 = _audio_value(kind, event)
        cut = cut_audio(text, b64) if b64 else None
        if cut is None:
            return self._event_record(direction, size, mono_ns, wall_ns, event, text)
        rest, audio, at = cut
        return self._event_record(direction, size, mono_ns, wall_ns, event, (rest[:at], rest[at:], audio))

    def _event_record(self, direction: str, size: int, mono_ns: int, wall_ns: int, event: dict[str, Any],
                      text: str | tuple[str, str, bytes]) -> Record:
        """The record of a JSON event: `text` is its whole text, or (text before the cut, after it, audio)."""
        kind = event["type"]
        response_id = _str_or_none(event.get("response_id"))
        if response_id is None and kind in _RESPONSE_OBJECT_TYPES and isinstance(event.get("response"), dict):
            response_id = _str_or_none(event["response"].get("id"))
        item_id = _str_or_none(event.get("item_id"))
        if item_id is None and isinstance(event.get("item"), dict):
            item_id = _str_or_none(event["item"].get("id"))
        redact_text = self.redactor.text
        event_id = _str_or_none(event.get("event_id"))
        # The type and ids are decoded from the text. Without escapes, each is a substring of it between quotes:
        # if the text has nothing to redact, neither have they (a secret or key format in one would be in the
        # text, with the same boundaries). With escapes a decoded value may spell one: each is redacted itself.
        if isinstance(text, str):
            payload, audio, audio_at = redact_text(text), None, None
            clean = payload == text and "\\" not in text
        else:
            # Redact around the cut: base64 holds no secret pattern, and scanning it would be the cost.
            raw_before, raw_after, audio = text
            before, after = redact_text(raw_before), redact_text(raw_after)
            payload, audio_at = before + after, len(before)
            clean = before == raw_before and after == raw_after and "\\" not in raw_before and "\\" not in raw_after
            if not self.keep_audio:
                audio = None
        if not clean:
            kind, event_id, response_id, item_id = (redact_text(v) if v else v
                                                    for v in (kind, event_id, response_id, item_id))
        return self._record(mono_ns, wall_ns, direction, kind, event_id, response_id, item_id, payload, audio,
                            audio_at, size)

    def unparsed(self, direction: str, error: str, opcode: int, data: bytes, size: int, mono_ns: int,
                 wall_ns: int) -> Record:
        """The `invalid.frame` record of a frame that breaks the WebSocket protocol: why, and its raw payload
        (`data`, the first bytes of `size`)."""
        payload = self.redactor.text(orjson.dumps({"error": error, "opcode": opcode, "size": size}).decode())
        return self._record(mono_ns, wall_ns, direction, INVALID_FRAME, None, None, None, payload, bytes(data),
                            None, min(size, _MAX_INT32))

    def lifecycle(self, kind: str, info: dict[str, Any], mono_ns: int, wall_ns: int) -> Record:
        """A `proxy.*` record whose payload is `info` as JSON, redacted like any payload."""
        payload = self.redactor.text(orjson.dumps(info).decode())
        return self._record(mono_ns, wall_ns, PROXY, kind, None, None, None, payload, None, None, len(payload))

    def open(self, info: dict[str, Any], mono_ns: int, wall_ns: int) -> Record:
        """The `proxy.open` record. `info["headers"]` is a list of (name, value) pairs as sent upstream and
        `info["query"]` the query string: both are recorded by allowlist (`rtreplay.recorder.redact`), and the
        credentials they carry are scrubbed from every later record of this session (of no other)."""
        info = dict(info)
        headers = info.get("headers") or []
        query = info.get("query") if isinstance(info.get("query"), str) else ""
        path = info.get("path") if isinstance(info.get("path"), str) else ""
        path, sep, path_query = path.partition("?")
        for secret in redact.handshake_secrets(headers, query + "&" + path_query if path_query else query):
            self.redactor.learn(secret)
        info["headers"] = redact.redact_headers(headers)
        if query:
            info["query"] = redact.redact_query(query)
        if sep:
            info["path"] = path + "?" + redact.redact_query(path_query)
        if isinstance(info.get("subprotocol"), str):
            info["subprotocol"] = redact.redact_subprotocol(info["subprotocol"])
        return self.lifecycle(PROXY_OPEN, info, mono_ns, wall_ns)
