"""The state of one Realtime session as rebuilt from its events, and the events the reducer consumes.

Rules of this module:
- State objects are plain mutable records owned by one fold (analyzer/reduce.py). Handlers change only the
  state passed to them; nothing here does I/O. `SessionState.copy()` is a deep copy, so a snapshot taken at
  any point is independent of the fold that continues from it.
- Items keep their wire fields as JSON-shaped dicts (what the server sent), with content parts normalised to
  the GA item spelling (`output_audio`, `output_text`). Audio bytes are kept as a list of chunks (bytes or
  read-only memoryviews of the archive's `audio` column) and joined only when asked for.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from rtreplay.recorder.schema import rebuild_frame

# Event types whose audio is a top-level field: handlers take it from `Event.audio` directly.
TOP_LEVEL_AUDIO = frozenset({"input_audio_buffer.append", "response.output_audio.delta", "response.audio.delta"})
# Streaming part types (`response.content_part.*`) and beta item content use `audio`/`text`; GA items say
# `output_audio`/`output_text` (realtime-protocol.md §3.6). Items are stored in the GA spelling.
PART_TYPES = {"audio": "output_audio", "text": "output_text"}


def part_type(raw: Any) -> str:
    return PART_TYPES.get(raw, raw) if isinstance(raw, str) else "unknown"


@dataclass(slots=True, eq=False)
class Event:
    """One archived event as the reducer sees it: the extracted columns, the payload parsed on first use.

    `audio` is the decoded audio cut out of the payload (archive column `audio`); when it is None and the
    payload still holds base64 inline, handlers decode it from `data`.
    """

    seq: int
    type: str
    direction: str = "server"
    payload: str = "{}"
    audio: Any = None  # bytes | memoryview | None
    item_id: str | None = None
    response_id: str | None = None
    mono_ns: int = 0
    ts_us: int = 0
    _data: dict | None = None
    # Consecutive rows loaded as one event (analyzer/load.py `Run`: audio appends, deltas of one item):
    # `seq` is its last row's, and the rows are applied at once or one by one (analyzer/reduce.py).
    run: Any = None
    audio_at: int | None = None  # where the audio's base64 was cut out of `payload` (archive column)

    def head(self, seq: int) -> Event:
        """For a run: the part of it up to and including `seq`. Other events: themselves."""
        return self if self.run is None else self.run.head(seq)

    @property
    def first_seq(self) -> int:
        """The seq of the first archived row this event stands for."""
        return self.seq if self.run is None else self.run.first_seq

    @property
    def count(self) -> int:
        """How many archived rows this event stands for."""
        return 1 if self.run is None else self.run.count

    @property
    def data(self) -> dict:
        """The payload as a dict; `{}` when it is not a JSON object (the reducer then records an anomaly)."""
        if self._data is None:
            text = self.payload
            if self.audio_at is not None and self.audio is not None and self.type not in TOP_LEVEL_AUDIO:
                # Audio cut out of a nested item (retrieve, create): put it back so the item is whole.
                text = rebuild_frame(text, bytes(self.audio), self.audio_at)
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = None
            self._data = value if isinstance(value, dict) else {}
        return self._data

    @classmethod
    def of(cls, seq: int, data: dict, *, direction: str = "server", audio: bytes | None = None,
           mono_ns: int = 0) -> Event:
        """An event from a JSON object (tests, imports): the columns are extracted as the recorder does."""
        sub = data.get("response") if isinstance(data.get("response"), dict) else {}
        item = data.get("item") if isinstance(data.get("item"), dict) else {}

        def first_str(*values: Any) -> str | None:
            return next((v for v in values if isinstance(v, str)), None)

        return cls(seq=seq, type=str(data.get("type")), direction=direction, payload=orjson.dumps(data).decode(),
                   audio=audio, item_id=first_str(data.get("item_id"), item.get("id")),
                   response_id=first_str(data.get("response_id"), sub.get("id")), mono_ns=mono_ns, _data=data)


@dataclass(slots=True)
class Part:
    """One content part of an item: its wire fields (text, transcript, …) and its audio chunks."""

    fields: dict
    audio: list = field(default_factory=list)
    audio_known: bool = False  # the audio is known (possibly empty), e.g. every delta of it was seen

    def audio_bytes(self) -> bytes:
        return b"".join(self.audio)

    def copy(self) -> Part:
        return Part(dict(self.fields), list(self.audio), self.audio_known)

    def to_json(self, with_audio: bool = True) -> dict:
        out = dict(self.fields)
        if with_audio and (self.audio or self.audio_known):
            out["audio"] = base64.b64encode(self.audio_bytes()).decode("ascii")
        return out


@dataclass(slots=True)
class Item:
    """A conversation item (or an out-of-band output item): wire fields without `content`, plus parts."""

    id: str
    fields: dict
    content: list[Part] = field(default_factory=list)
    response_id: str | None = None  # the response that produced it, when it is model output
    added_seq: int | None = None

    def copy(self) -> Item:
        return Item(self.id, dict(self.fields), [p.copy() for p in self.content], self.response_id, self.added_seq)

    def to_json(self, with_audio: bool = True) -> dict:
        out = {"id": self.id, **self.fields}
        if self.content or "content" in self.fields or self.fields.get("type") == "message":
            out["content"] = [p.to_json(with_audio) for p in self.content]
        return out

    def text(self) -> str:
        """What the item says, for transcripts: text, transcript, or the call and its arguments/output."""
        kind = self.fields.get("type")
        if kind == "function_call":
            return f"{self.fields.get('name')}({self.fields.get('arguments') or ''})"
        if kind == "function_call_output":
            return str(self.fields.get("output") or "")
        if kind == "mcp_call":
            return f"{self.fields.get('server_label')}.{self.fields.get('name')}({self.fields.get('arguments') or ''})"
        pieces = []
        for p in self.content:
            t = p.fields.get("text")
            if t is None:
                t = p.fields.get("transcript")
            if t is None and p.audio:
                t = "[audio]"
            if t is not None:
                pieces.append(str(t))
        return " ".join(pieces)


@dataclass(slots=True)
class Response:
    """One response: what was asked (when a client request started it), and what the server did."""

    id: str
    status: str = "in_progress"
    conversation_id: str | None = None
    out_of_band: bool = False
    metadata: Any = None
    status_details: Any = None
    usage: Any = None
    output: list[str] = field(default_factory=list)  # output item ids, in output_index order
    final: dict | None = None  # the `response` object of response.done (output without audio)
    request_seq: int | None = None  # seq of the client response.create that asked for it (definitions.md)
    request: dict | None = None  # that request's `response` parameters
    created_seq: int | None = None
    done_seq: int | None = None
    created_mono_ns: int | None = None
    first_output_mono_ns: int | None = None
    done_mono_ns: int | None = None

    def copy(self) -> Response:
        return Response(self.id, self.status, self.conversation_id, self.out_of_band, self.metadata,
                        self.status_details, self.usage, list(self.output), self.final, self.request_seq,
                        self.request, self.created_seq, self.done_seq, self.created_mono_ns,
                        self.first_output_mono_ns, self.done_mono_ns)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something surprising in the recorded stream: kept as data, never raised (except in strict mode)."""

    seq: int
    type: str  # the event's wire type
    kind: str  # short machine-readable tag, e.g. "unknown_type", "delta_for_unknown_item"
    message: str


@dataclass(slots=True)
class SessionState:
    """Everything rebuilt from one session's events up to `last_seq`."""

    session_id: str | None = None
    last_seq: int | None = None
    session: dict = field(default_factory=dict)  # effective config: last session.created/updated
    order: list[str] = field(default_factory=list)  # default conversation, item ids in order
    items: dict[str, Item] = field(default_factory=dict)  # default conversation items by id
    outputs: dict[str, Item] = field(default_factory=dict)  # output items not in the conversation
    responses: dict[str, Response] = field(default_factory=dict)
    input_audio: list = field(default_factory=list)  # uncommitted input audio chunks
    input_written: int = 0  # input audio bytes appended this session
    buffer_start: int = 0  # session offset (bytes) of the first uncommitted byte
    speech_ms: tuple[int | None, int | None] = (None, None)  # VAD audio_start_ms / audio_end_ms of this turn
    anomalies: list[Anomaly] = field(default_factory=list)
    # Errors the server reported: `error` events and failed input transcriptions, as (seq, type, error object).
    errors: list[tuple[int, str, Any]] = field(default_factory=list)
    # Bookkeeping between events (part of the state, so a snapshot can continue the fold).
    # Requests not yet answered, in order: (seq, event_id, `response` parameters).
    waiting_requests: list[tuple[int, Any, dict | None]] = field(default_factory=list)
    committed_audio: dict[str, list] = field(default_factory=dict)  # item id -> audio of the commit
    client_audio: dict[str, bytes] = field(default_factory=dict)  # client-created item id -> its audio
    # Input transcription events for an item not yet added, applied in order when it is (item id -> events).
    pending_transcription: dict[str, list[Event]] = field(default_factory=dict)
    closed: bool = False
    # The walk that pairs requests with responses (analyzer/state/reduce_requests.py): the latest client
    # event per event_id as (seq, type), the requests refused by an error naming them, and what was met.
    client_ids: dict[str, tuple[int, str]] = field(default_factory=dict)
    rejected: set[int] = field(default_factory=set)
    walk: list[tuple] = field(default_factory=list)

    def copy(self) -> SessionState:
        """A deep copy: continuing the fold on either one never affects the other."""
        return SessionState(
            self.session_id, self.last_seq, _copy_json(self.session), list(self.order),
            {k: v.copy() for k, v in self.items.items()}, {k: v.copy() for k, v in self.outputs.items()},
            {k: v.copy() for k, v in self.responses.items()}, list(self.input_audio), self.input_written,
            self.buffer_start, self.speech_ms, list(self.anomalies), list(self.errors),
            list(self.waiting_requests), {k: list(v) for k, v in self.committed_audio.items()},
            dict(self.client_audio), {k: list(v) for k, v in self.pending_transcription.items()}, self.closed,
            dict(self.client_ids), set(self.rejected), list(self.walk),
        )

    def find_item(self, item_id: Any) -> Item | None:
        if not isinstance(item_id, str):
            return None
        return self.items.get(item_id) or self.outputs.get(item_id)

    def conversation(self) -> list[Item]:
        return [self.items[i] for i in self.order]

    def input_audio_bytes(self) -> bytes:
        return b"".join(self.input_audio)

    def to_json(self, with_audio: bool = False) -> dict:
        """A JSON-ready summary: config, items in order, responses and anomalies (audio as base64 if asked)."""
        return {
            "session_id": self.session_id,
            "last_seq": self.last_seq,
            "session": self.session,
            "items": [it.to_json(with_audio) for it in self.conversation()],
            "responses": {
                rid: {"status": r.status, "out_of_band": r.out_of_band, "metadata": r.metadata,
                      "status_details": r.status_details, "usage": r.usage, "request_seq": r.request_seq,
                      "output": [(self.find_item(i).to_json(with_audio) if self.find_item(i) else {"id": i})
                                 for i in r.output]}
                for rid, r in self.responses.items()
            },
            "input_audio_bytes": sum(len(c) for c in self.input_audio),
            "errors": [{"seq": seq, "type": kind, "error": error} for seq, kind, error in self.errors],
            "anomalies": [{"seq": a.seq, "type": a.type, "kind": a.kind, "message": a.message} for a in self.anomalies],
        }


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
