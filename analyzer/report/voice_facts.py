"""What the voice reports (latency, interruptions, cost, failures) read from an archive: one `SessionFacts` per
session, built by one walk over the session's few control events (docs/definitions.md, "Voice sessions").
Reading the archive is `rtreplay.analyzer.report.voice_read`, the records are `voice_values`; this module is the walk.

Most rows of a voice archive are audio appends and output deltas. They are never turned into Python objects:
polars reads them column-wise (no payload, the audio column only as its length) and folds them per output
item into `ItemAudio` (first delta, first audio delta, audio bytes). Only the control events (requests,
response lifecycle, errors, VAD markers, tool calls, truncations, transcriptions, session settings, proxy
records and every client event except audio appends) are walked one by one, in seq order. The transcript
deltas of a truncated item are read again, for that item only, to cut its transcript where the audio was.

Memory: facts are a few small records per turn/response; the loader works batch by batch of whole sessions
and the reports fold each session's facts as it comes (voice.build_reports), so what is held is one batch of
control rows and its facts, plus what the reports' output lists (docs/report.md, "Memory").
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from rtreplay.analyzer.report.voice_values import (
    BargeIn, Failure, ItemAudio, ResponseFact, Sample, SessionFacts, Transcription, Truncation,
)
from rtreplay.analyzer.state.match import _model_from_open, is_ordered_rejection

APPEND = "input_audio_buffer.append"
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
TRANSCRIPT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta")
TEXT_DELTAS = ("response.output_text.delta", "response.text.delta")
DELTAS = AUDIO_DELTAS + TRANSCRIPT_DELTAS + TEXT_DELTAS
# The beta WebRTC names of January 2025 for the output audio buffer's events (docs/definitions.md, "Playing").
BUFFER_ALIASES = {"output_audio_buffer.audio_started": "output_audio_buffer.started",
                  "output_audio_buffer.audio_stopped": "output_audio_buffer.stopped",
                  "output_audio_buffer.audio_cleared": "output_audio_buffer.cleared"}
# Server and proxy events the walk reads (every client event but audio appends is read too).
CONTROL_TYPES = (
    "session.created", "session.updated", "proxy.open", "proxy.close", "proxy.error", "proxy.upstream_rejected",
    "response.created", "response.done", "error",
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "response.function_call_arguments.done", "conversation.item.truncated",
    "conversation.item.input_audio_transcription.completed", "conversation.item.input_audio_transcription.failed",
    "output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared",
) + tuple(BUFFER_ALIASES)
# Types whose payload the walk reads; the rest need only their columns (seq, mono_ns, event_id, item_id, …).
PARSED = frozenset({
    "conversation.item.create", "conversation.item.truncate", "conversation.item.truncated",
    "session.created", "session.updated",
    "proxy.open", "proxy.close", "proxy.upstream_rejected", "response.created", "error",
    "response.function_call_arguments.done", "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
})
COLUMNS = ("session_id", "seq", "ts", "mono_ns", "direction", "type", "event_id", "response_id", "item_id", "payload")
# Fields the reader cuts out of the two big payloads (response.create carries the tools, response.done the whole
# output) so that the walk need not parse them: JSON text of each (strings unquoted), None when absent.
JSON_FIELDS = (("response.create", "$.response.conversation"), ("response.create", "$.response.metadata"),
               ("response.done", "$.response.status"), ("response.done", "$.response.status_details"),
               ("response.done", "$.response.usage"))
NORMAL_CLOSE = 1000



# --- the walk -----------------------------------------------------------------------------------------

def _obj(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def bytes_per_ms(session: dict) -> int:
    """Output audio bytes per ms of the session config in force: 8 for G.711, else 48 (PCM16, 24 kHz)."""
    out = _obj(_obj(session.get("audio")).get("output"))
    kind = _obj(out.get("format")).get("type") if "format" in out else session.get("output_audio_format")
    return 8 if kind in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw") else 48


def transcription_model(session: dict) -> str | None:
    t = _obj(_obj(_obj(session.get("audio")).get("input")).get("transcription")) or \
        _obj(session.get("input_audio_transcription"))
    m = t.get("model")
    return m if isinstance(m, str) else None


def _code(err: dict) -> str | None:
    v = err.get("code") if err.get("code") is not None else err.get("type")
    return None if v is None else str(v)


def walk(sid: str, rows: Iterable[tuple], audio: dict[str | None, ItemAudio], start: tuple[int, int]) -> SessionFacts:
    """One session's facts from its control rows (COLUMNS order, seq order) and its items' audio."""
    rows = list(rows)
    f = SessionFacts(sid, start_ts_us=start[0])
    t0 = start[1]
    per_response: dict[str, list[tuple[str | None, ItemAudio]]] = defaultdict(list)
    for iid, a in audio.items():
        if a.response_id is not None:
            per_response[a.response_id].append((iid, a))

    def minute(mono: int) -> int:
        return max(0, (mono - t0) // 60_000_000_000)

    # Rule 1 of "Matching" (docs/definitions.md) first: an error naming an event_id answers the latest client
    # event before it with that id (its cause), and takes a response.create so named out of the walk.
    latest: dict[str, tuple[int, str]] = {}
    rejected: set[int] = set()
    cause_of: dict[int, str] = {}  # error row -> type of the client event it names
    parsed: list[dict] = []
    for i, (_, seq, ts, mono, direction, kind, eid, rid, iid, payload, *_) in enumerate(rows):
        d = {}
        if kind in PARSED:  # the other rows are read from their columns alone
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                data = None
            d = data if isinstance(data, dict) else {}
        parsed.append(d)
        if direction == "client":
            if isinstance(eid, str):  # the archive's event_id column: the client event's own id
                latest[eid] = (i, kind)
        elif kind == "error" and direction == "server":
            e = _obj(d.get("error")).get("event_id")
            named = latest.get(e) if isinstance(e, str) else None
            if named is not None:
                cause_of[i] = named[1]
                if named[1] == "response.create":
                    rejected.add(named[0])

    session: dict = {}
    open_model: str | None = None
    waiting: list[tuple[int, int, dict | None, bool]] = []  # requests waiting: (seq, mono, metadata, out of band)
    seen: set[str] = set()  # responses whose response.created (or first response.done) was walked
    stops = 0
    turn_pending: tuple[int, int] | None = None  # (seq, mono) of a speech_stopped not yet answered
    calls: dict[str, tuple[int, int, int, str | None, str | None]] = {}  # call_id -> (seq, mono, ts, name, response)
    outputs: dict[str, tuple[int, int]] = {}  # call_id -> (seq, mono) of the app's function_call_output
    awaiting: list[tuple[str, int, int, int]] = []  # outputs with no response yet: (call_id, seq, mono, ts)
    tool_rounds: list[tuple[str, int, ResponseFact]] = []  # (call_id, output mono, next response)
    active: dict[str, ResponseFact] = {}  # created, not done
    truncates: list[tuple[int, str, int]] = []  # (index in f.truncations, client event_id, seq)
    turn_responses: list[tuple[int, int, ResponseFact]] = []  # (stop seq, stop mono, response)
    playback: dict[str, bool] = {}  # response_id -> playing (first output_audio_buffer.started, not yet ended)
    cleared: list[tuple[int, str]] = []  # (seq, response_id) of output_audio_buffer.cleared
    server_truncated: list[tuple[int, str, int | None]] = []  # (seq, item_id, audio_end_ms) of .truncated

    for i, (_, seq, ts, mono, direction, kind, eid, rid, iid, payload, conv, meta, j_status, j_details, j_usage) \
            in enumerate(rows):
        d = parsed[i]
        kind = BUFFER_ALIASES.get(kind, kind)
        if direction == "client":
            if kind == "response.create" and i not in rejected:
                waiting.append((seq, mono, _meta_key(_loads(meta)), conv == "none"))
            elif kind == "conversation.item.create":
                item = _obj(d.get("item"))
                cid = item.get("call_id")
                if item.get("type") == "function_call_output" and isinstance(cid, str) and cid not in outputs:
                    outputs[cid] = (seq, mono)
                    awaiting.append((cid, seq, mono, ts))
            elif kind == "conversation.item.truncate":
                tid = d.get("item_id") if isinstance(d.get("item_id"), str) else None
                end = d.get("audio_end_ms")
                end = end if isinstance(end, int) and not isinstance(end, bool) else None
                a = audio.get(tid) if tid is not None else None
                gen = a.audio_bytes / bytes_per_ms(session) if a is not None and a.audio_seq is not None else None
                valid = end is not None and end >= 0 and gen is not None and end <= gen
                tr = Truncation(seq, ts, tid, end, gen, valid, "none",
                                unheard_ms=max(0.0, gen - end) if valid else 0.0,  # type: ignore[operator]
                                response_id=a.response_id if a is not None else None)
                f.truncations.append(tr)
                truncates.append((len(f.truncations) - 1, eid if isinstance(eid, str) else "", seq))
            continue
        if kind in ("session.created", "session.updated"):
            session = _obj(d.get("session"))
            if isinstance(session.get("model"), str):
                f.model = session["model"]
        elif kind == "proxy.open":
            open_model = _model_from_open(d)
            f.model = f.model or open_model
        elif kind == "input_audio_buffer.speech_stopped":
            stops += 1
            turn_pending = (seq, mono)
        elif kind == "input_audio_buffer.speech_started":
            streaming = {r.response_id for r in active.values() if r.audio_seq is not None and r.audio_seq < seq}
            playing = {p for p, on in playback.items() if on and p in f.responses
                       and (f.responses[p].created_seq or seq) < seq}
            if streaming or playing:
                r = max((f.responses[p] for p in streaming | playing), key=lambda r: r.created_seq)  # type: ignore[arg-type,return-value]
                f.barge_ins.append(_barge_in(r, per_response.get(r.response_id, []), seq, ts, minute(mono),
                                             (mono - t0) / 1e9, bytes_per_ms(session),
                                             "audio_deltas" if r.response_id in streaming else "output_audio_buffer"))
        elif kind == "response.created":
            raw = _obj(d.get("response"))
            rid = rid or raw.get("id")
            if not isinstance(rid, str):
                continue
            r = _response(f, rid)
            r.created_seq, r.created_mono, r.ts_us = seq, mono, ts
            r.out_of_band = "conversation_id" in raw and raw["conversation_id"] is None
            r.model = session.get("model") if isinstance(session.get("model"), str) else open_model
            r.turn = stops
            _attach_audio(r, per_response.get(rid, []), bytes_per_ms(session))
            active[rid] = r
            seen.add(rid)
            got = _take(waiting, _meta_key(raw.get("metadata")),
                        raw.get("conversation_id") is None if "conversation_id" in raw else None)
            if got is not None:
                q_seq, q_mono = got
                r.request_seq = q_seq
                f.samples.append(Sample("request_to_created", q_seq, (mono - q_mono) / 1e6, minute(q_mono)))
                if r.first_mono is not None:
                    f.samples.append(Sample("request_to_first_delta", q_seq, (r.first_mono - q_mono) / 1e6,
                                            minute(q_mono)))
            if turn_pending is not None:
                turn_responses.append((turn_pending[0], turn_pending[1], r))
                turn_pending = None
            for cid, o_seq, o_mono, _ts in awaiting:
                tool_rounds.append((cid, o_mono, r))
            awaiting = []
        elif kind == "response.done":
            raw: dict = {}
            if not isinstance(rid, str) or rid not in seen:  # the rare case that needs the whole payload
                raw = _obj(_loads(payload).get("response") if isinstance(_loads(payload), dict) else None)
                rid = rid or raw.get("id")
            if not isinstance(rid, str):
                continue
            if rid not in seen:  # no response.created before it: it answers a request by its metadata echo
                seen.add(rid)
                meta = _meta_key(raw.get("metadata"))
                if meta:
                    _take(waiting, meta, raw.get("conversation_id") is None if "conversation_id" in raw else None)
            r = _response(f, rid)
            if r.done_seq is not None:
                continue  # the first response.done counts
            if r.created_seq is None:
                r.turn, r.ts_us = stops, ts
                r.model = session.get("model") if isinstance(session.get("model"), str) else open_model
                _attach_audio(r, per_response.get(rid, []), bytes_per_ms(session))
            active.pop(rid, None)
            r.done_seq, r.status = seq, j_status
            details = _obj(_loads(j_details))
            usage = _loads(j_usage)
            r.usage = usage if isinstance(usage, dict) else None
            if r.status == "completed":
                pass
            elif r.status in ("incomplete", "cancelled"):
                r.detail = details.get("reason") if isinstance(details.get("reason"), str) else None
                if r.status == "incomplete":
                    f.failures.append(Failure(seq, ts, "response_incomplete", r.detail))
            else:
                r.detail = _code(_obj(details.get("error"))) if r.status == "failed" else r.status
                f.failures.append(Failure(seq, ts, "response_failed", r.detail))
        elif kind == "error":
            err = _obj(d.get("error"))
            e = err.get("event_id")
            if waiting and is_ordered_rejection(err):
                waiting.pop(0)
            cause = cause_of.get(i)
            if cause is None and is_ordered_rejection(err):
                cause = "response.create"
            code = _code(err)
            if code == "session_expired":
                f.failures.append(Failure(seq, ts, "session_expired", code, cause))
            else:
                f.failures.append(Failure(seq, ts, "error", code, cause))
            for k, t_eid, _ in truncates:  # an error naming the truncate answers it, whatever came before
                if t_eid and t_eid == e and f.truncations[k].answer != "error":
                    f.truncations[k].answer, f.truncations[k].error_code = "error", code
        elif kind == "conversation.item.truncated" and iid is not None:
            end = d.get("audio_end_ms")
            server_truncated.append((seq, iid, end if isinstance(end, int) and not isinstance(end, bool) else None))
            # it answers the item's latest truncate (the one before the next truncate of the same item)
            latest = next((f.truncations[k] for k, _, _ in reversed(truncates) if f.truncations[k].item_id == iid), None)
            if latest is not None and latest.answer == "none":
                latest.answer = "truncated"
        elif kind == "output_audio_buffer.started":
            r_ = f.responses.get(rid) if isinstance(rid, str) else None
            if r_ is not None and r_.playback_mono is None:
                r_.playback_mono = mono
            if isinstance(rid, str) and rid not in playback:  # the first start counts, as for first audio
                playback[rid] = True
        elif kind in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            if isinstance(rid, str) and playback.get(rid):
                playback[rid] = False
            if kind == "output_audio_buffer.cleared" and isinstance(rid, str):
                cleared.append((seq, rid))
        elif kind == "response.function_call_arguments.done":
            cid = d.get("call_id")
            if isinstance(cid, str) and cid not in calls:
                calls[cid] = (seq, mono, ts, d.get("name") if isinstance(d.get("name"), str) else None, rid)
        elif kind == "conversation.item.input_audio_transcription.completed":
            f.transcriptions.append(Transcription(seq, stops, transcription_model(session),
                                                  d.get("usage") if isinstance(d.get("usage"), dict) else None))
        elif kind == "conversation.item.input_audio_transcription.failed":
            f.failures.append(Failure(seq, ts, "transcription_failed", _code(_obj(d.get("error")))))
        elif kind == "proxy.error":
            f.failures.append(Failure(seq, ts, "proxy_error"))
        elif kind == "proxy.upstream_rejected":
            status = d.get("status")
            f.failures.append(Failure(seq, ts, "upstream_rejected", None if status is None else str(status)))
        elif kind == "proxy.close":
            server = d.get("server")
            if d.get("stopped") is not None:  # the proxy said 1001 to both sides: their 1001s are its own doing
                f.failures.append(Failure(seq, ts, "proxy_stopped"))
            elif isinstance(server, dict) and isinstance(server.get("code"), int) and server["code"] != NORMAL_CLOSE:
                f.failures.append(Failure(seq, ts, "upstream_close", str(server["code"])))
            elif server is None and d.get("first_disconnect") == "server":
                f.failures.append(Failure(seq, ts, "upstream_drop"))

    f.turns = stops
    end_seq = rows[-1][1] if rows else 0
    for r in active.values():
        f.failures.append(Failure(r.created_seq or end_seq, r.ts_us, "response_without_done"))
    for stop_seq, stop_mono, r in turn_responses:
        # First audio: the first audio delta; over WebRTC/SIP (audio on the media track) the first
        # output_audio_buffer.started of the response.
        audio_mono = r.audio_mono if r.audio_mono is not None else r.playback_mono
        if audio_mono is not None:
            tokens = _obj(r.usage).get("input_tokens") if r.usage else None
            f.samples.append(Sample("turn_to_first_audio", stop_seq, (audio_mono - stop_mono) / 1e6,
                                    minute(stop_mono), tokens if isinstance(tokens, int) else None))
    for cid, (c_seq, c_mono, c_ts, name, c_rid) in calls.items():
        if cid not in outputs:
            # An out-of-band call is the app's structured output (read from its arguments): nobody answers it.
            if not (c_rid in f.responses and f.responses[c_rid].out_of_band):
                f.failures.append(Failure(c_seq, c_ts, "hung_tool_call", name))
            continue
        f.samples.append(Sample("tool_call_to_output", c_seq, (outputs[cid][1] - c_mono) / 1e6, minute(c_mono)))
    for cid, o_mono, r in tool_rounds:
        if cid in calls and r.first_mono is not None:
            c_seq, c_mono = calls[cid][0], calls[cid][1]
            f.samples.append(Sample("tool_output_to_first_delta", c_seq, (r.first_mono - o_mono) / 1e6, minute(c_mono)))
            f.samples.append(Sample("tool_round_trip", c_seq, (r.first_mono - c_mono) / 1e6, minute(c_mono)))
    for cid, o_seq, _o_mono, o_ts in awaiting:
        f.failures.append(Failure(o_seq, o_ts, "output_without_response", cid))
    # Barge-ins: the first truncate of the cut item after the barge-in answers it; over WebRTC/SIP the server
    # clears the output audio buffer and truncates the item itself.
    for b in f.barge_ins:
        if b.source == "output_audio_buffer":
            b.cleared_seq = next((c for c, r_ in cleared if r_ == b.response_id and c > b.seq), None)
        t = next((t for t in f.truncations if b.item_id is not None and t.item_id == b.item_id and t.seq > b.seq),
                 None)
        s_ = None if t is not None or b.source != "output_audio_buffer" else \
            next((x for x in server_truncated if b.item_id is not None and x[1] == b.item_id and x[0] > b.seq), None)
        if t is not None:
            b.truncate_seq, b.truncated_by, b.audio_end_ms, b.valid = t.seq, "client", t.audio_end_ms, t.valid
        elif s_ is not None:
            b.truncate_seq, b.truncated_by, b.audio_end_ms = s_[0], "server", s_[2]
        else:
            f.failures.append(Failure(b.seq, b.ts_us, "barge_in_not_truncated", b.response_id))
    for t in f.truncations:
        if not t.valid:
            f.failures.append(Failure(t.seq, t.ts_us, "invalid_truncate", t.item_id))
    f.failures.sort(key=lambda x: (x.seq, x.kind))
    return f


def _loads(text: str | None) -> Any:
    """A JSON text, parsed; None for None or text that is not JSON."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _meta_key(value: Any) -> dict | None:
    """The metadata part of a request's key: a non-empty object, else none (as analyzer/state/match.py)."""
    return value if isinstance(value, dict) and value else None


def _take(waiting: list[tuple[int, int, dict | None, bool]], meta: dict | None,
          oob: bool | None) -> tuple[int, int] | None:
    """(seq, mono) of the oldest waiting request with this key, taken out; None when none has it."""
    for k, (_, _, m, o) in enumerate(waiting):
        if m == meta and (oob is None or o == oob):
            seq, mono = waiting.pop(k)[:2]
            return seq, mono
    return None


def _response(f: SessionFacts, rid: str) -> ResponseFact:
    r = f.responses.get(rid)
    if r is None:
        r = f.responses[rid] = ResponseFact(rid)
    return r


def _barge_in(r: ResponseFact, items: list[tuple[str | None, ItemAudio]], seq: int, ts: int, minute: int,
              at_s: float, bpm: int, source: str) -> BargeIn:
    """A barge-in on `r`. The cut item: its item whose first audio is latest before `seq`; when it streamed no
    audio deltas (WebRTC/SIP), its item whose first delta is latest before `seq`."""
    if r.audio_seq is not None:
        cands = [(a.audio_seq, iid, a) for iid, a in items if a.audio_seq is not None and a.audio_seq < seq]
    else:
        cands = [(a.first_seq, iid, a) for iid, a in items if a.first_seq is not None and a.first_seq < seq]
    _, iid, a = max(cands, key=lambda x: x[0]) if cands else (None, None, None)  # type: ignore[arg-type,return-value]
    gen = a.audio_bytes / bpm if a is not None and a.audio_seq is not None else None
    return BargeIn(seq, ts, minute, r.response_id, iid, gen, source, bpm=bpm, at_s=at_s)


def _attach_audio(r: ResponseFact, items: list[tuple[str | None, ItemAudio]], bpm: int) -> None:
    firsts = [a for _, a in items if a.first_seq is not None]
    if firsts:
        r.first_mono = min(firsts, key=lambda a: a.first_seq).first_mono  # type: ignore[arg-type,return-value]
    audios = [a for _, a in items if a.audio_seq is not None]
    if audios:
        first = min(audios, key=lambda a: a.audio_seq)  # type: ignore[arg-type,return-value]
        r.audio_seq, r.audio_mono = first.audio_seq, first.audio_mono
        r.audio_ms = sum(a.audio_bytes for a in audios) / bpm
