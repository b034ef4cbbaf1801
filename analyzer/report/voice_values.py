"""The values the voice reports are built from: one `SessionFacts` per session (what `voice_facts.walk` read from
its events), with the responses, latency samples, truncations, barge-ins, transcriptions and failures in it."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


# --- facts --------------------------------------------------------------------------------------------

@dataclass(slots=True)
class ItemAudio:
    """One output item's streamed deltas (whole session)."""
    response_id: str | None
    first_seq: int | None = None  # first delta of any kind
    first_mono: int | None = None
    audio_seq: int | None = None  # first audio delta
    audio_mono: int | None = None
    audio_bytes: int = 0


@dataclass(slots=True)
class ResponseFact:
    response_id: str
    created_seq: int | None = None
    created_mono: int | None = None
    done_seq: int | None = None
    status: str | None = None
    detail: str | None = None  # failed: error code (else type); incomplete/cancelled: reason
    usage: dict | None = None
    model: str | None = None
    turn: int = 0  # speech_stopped events before response.created (or response.done when never created)
    request_seq: int | None = None
    first_mono: int | None = None  # first delta of any kind
    audio_mono: int | None = None  # first audio delta
    audio_seq: int | None = None
    audio_ms: float = 0.0  # audio generated (all items), ms
    ts_us: int = 0
    out_of_band: bool = False  # response.created says conversation_id null
    playback_mono: int | None = None  # first output_audio_buffer.started naming it (WebRTC/SIP: no audio deltas)


@dataclass(slots=True)
class Sample:
    """One latency measurement: `ms` between two events, at `minute` of the session."""
    measure: str
    seq: int
    ms: float
    minute: int
    context_tokens: int | None = None  # input tokens of the response waited for (usage)


@dataclass(slots=True)
class Truncation:
    seq: int
    ts_us: int
    item_id: str | None
    audio_end_ms: int | None
    generated_ms: float | None  # audio generated for the item; None when the item streamed no audio
    valid: bool  # audio_end_ms within generated_ms
    answer: str  # truncated | error | none
    error_code: str | None = None
    unheard_ms: float = 0.0
    response_id: str | None = None


@dataclass(slots=True)
class BargeIn:
    seq: int
    ts_us: int
    minute: int
    response_id: str
    item_id: str | None
    generated_ms: float | None  # None: the cut item streamed no audio deltas (WebRTC/SIP)
    source: str = "audio_deltas"  # what showed the audio playing: audio_deltas | output_audio_buffer
    cleared_seq: int | None = None  # the output_audio_buffer.cleared that cut it (WebRTC/SIP)
    truncate_seq: int | None = None
    truncated_by: str | None = None  # client (conversation.item.truncate) | server (WebRTC/SIP: .truncated)
    audio_end_ms: int | None = None
    valid: bool | None = None  # the client's truncate judged; None when none or the server truncated
    heard: str | None = None  # transcript cut at audio_end_ms
    generated: str | None = None  # transcript as generated
    bpm: int = 48  # output audio bytes per ms in force
    at_s: float = 0.0  # seconds since the session's first event


@dataclass(slots=True)
class Transcription:
    seq: int
    turn: int
    model: str | None
    usage: dict | None


@dataclass(slots=True)
class Failure:
    seq: int
    ts_us: int
    kind: str
    detail: str | None = None
    cause: str | None = None  # the client event type that caused it (errors)


@dataclass(slots=True)
class SessionFacts:
    session_id: str
    start_ts_us: int = 0
    model: str | None = None
    turns: int = 0
    samples: list[Sample] = field(default_factory=list)
    responses: dict[str, ResponseFact] = field(default_factory=dict)
    barge_ins: list[BargeIn] = field(default_factory=list)
    truncations: list[Truncation] = field(default_factory=list)
    transcriptions: list[Transcription] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def iter_samples(facts: Iterable[SessionFacts]) -> Iterator[Sample]:
    for f in facts:
        yield from f.samples


def utc(ts_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.timezone.utc)
