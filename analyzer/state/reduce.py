"""The reducer: one handler per wire event `type`, folding a session's events into a `SessionState`.

Rules:
- Everything that changes rebuilt state lives here and in analyzer/state/reduce_items.py (items and content),
  reduce_requests.py (which request each response answers) and reduce_runs.py (runs of rows at once).
  `apply(state, event)` is pure in the sense that matters
  for an event-sourced fold: no I/O, no clock, no randomness; it changes only the `state` passed in and
  returns it. The fold owns its state; `SessionState.copy()` (a deep copy) gives independent snapshots,
  so `fold(b, fold(a).copy())` equals `fold(a + b)`. Handlers never mutate a JSON object taken from an
  event in place (they replace values), which is what lets `copy()` share those objects.
- The server's events are the truth for state; client events only supply intent (the audio the client
  appended or attached, the parameters of a `response.create`).
- A surprising or malformed stream becomes `Anomaly` records, never an exception. A handler that meets a
  field of the wrong shape raises `Malformed`, which `apply` turns into an anomaly. Any other exception is
  our bug and propagates. `strict=True` turns the first anomaly into `AnomalyError` (for tests and CI).
- GA and beta names are both handled (realtime-protocol.md §2.4–2.5). `HANDLERS` holds every GA client and
  server type of §2.2–2.3; types that change nothing map to `no_change` explicitly.
- A run of rows (analyzer/load.py: audio appends and the deltas of one item) is applied through
  `RUN_HANDLERS`, also keyed by wire type, only when that gives the state its rows give one by one
  (`apply_run`); tests/test_perf_equivalence.py holds the two equal at every seq.
"""
from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rtreplay.analyzer.state.reduce_items import (
    Handler, Malformed, anomaly, arguments_handler, as_dict, as_str, audio_delta, audio_done, audio_of,
    item_deleted, item_done, item_retrieved, item_truncated, item_upserted, mcp_call_status, merge_item,
    merge_known_item, new_item, part_added, text_delta, text_done, transcription, transcription_never_placed,
)
from rtreplay.analyzer.state.reduce_runs import (
    ARGUMENTS_RUN, AUDIO_RUN, INPUT_RUN, TEXT_RUN, TRANSCRIPT_RUN, RunHandler,
)
from rtreplay.analyzer.state.reduce_requests import (
    client_event_seen, error_event, partial_done, response_create, set_out_of_band, take_request,
)
from rtreplay.analyzer.state.session import Anomaly, Event, Response, SessionState
from rtreplay.recorder.schema import CLIENT

__all__ = ["HANDLERS", "RUN_HANDLERS", "AnomalyError", "Malformed", "apply", "apply_run", "finish", "fold"]


class AnomalyError(Exception):
    """Raised by a strict fold on the first anomaly."""


# -- session, buffer, responses -------------------------------------------------------------------------
def session_set(state: SessionState, ev: Event) -> None:
    state.session = as_dict(ev.data.get("session"), "session")


def buffer_append(state: SessionState, ev: Event) -> None:
    chunk = audio_of(ev, "audio")
    state.input_audio.append(chunk)
    state.input_written += len(chunk)


def _input_bytes_per_ms(state: SessionState) -> int:
    audio = state.session.get("audio")
    inp = audio.get("input") if isinstance(audio, dict) else None
    fmt = inp.get("format") if isinstance(inp, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else state.session.get("input_audio_format")
    return 8 if kind in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw") else 48


def speech_started(state: SessionState, ev: Event) -> None:
    start = ev.data.get("audio_start_ms")
    state.speech_ms = (start if isinstance(start, int) else None, None)


def timeout_triggered(state: SessionState, ev: Event) -> None:
    """The idle timeout ends the turn like end of speech: the commit that follows takes audio_start_ms..
    audio_end_ms (protocol §2.3: "followed by a commit of the silent audio and a response")."""
    start, end = ev.data.get("audio_start_ms"), ev.data.get("audio_end_ms")
    state.speech_ms = (start if isinstance(start, int) else None, end if isinstance(end, int) else None)


def speech_stopped(state: SessionState, ev: Event) -> None:
    end = ev.data.get("audio_end_ms")
    state.speech_ms = (state.speech_ms[0], end if isinstance(end, int) else None)


def buffer_committed(state: SessionState, ev: Event) -> None:
    """The buffer becomes the user item's audio. After VAD end of speech only the speech segment is
    committed (audio_start_ms..audio_end_ms, offsets into all audio written this session); the rest
    stays buffered. A manual commit takes the whole buffer."""
    iid = as_str(ev.data.get("item_id"), "item_id")
    start_ms, end_ms = state.speech_ms
    if end_ms is None:
        state.committed_audio[iid] = state.input_audio
        state.input_audio = []
        state.buffer_start = state.input_written
    else:
        bpm = _input_bytes_per_ms(state)
        buf = state.input_audio
        start = max(0, (start_ms or 0) * bpm - state.buffer_start)
        end = max(start, end_ms * bpm - state.buffer_start)
        state.committed_audio[iid] = _cut(buf, start, end) or [b""]
        state.input_audio = _cut(buf, end, None)
        state.buffer_start = state.input_written - sum(len(c) for c in state.input_audio)
    state.speech_ms = (None, None)


def _cut(chunks: list, start: int, end: int | None) -> list:
    """Bytes [start, end) of the chunks joined (to the end when None), as views of them: no copy."""
    out = []
    at = 0
    for chunk in chunks:
        n = len(chunk)
        a, b = max(start - at, 0), n if end is None else min(end - at, n)
        if a < b:
            out.append(memoryview(chunk)[a:b])
        at += n
        if end is not None and at >= end:
            break
    return out


def buffer_cleared(state: SessionState, ev: Event) -> None:
    state.input_audio = []
    state.buffer_start = state.input_written
    state.speech_ms = (None, None)


def client_item_create(state: SessionState, ev: Event) -> None:
    """Intent only: remember audio the client attached, for when the server adds the item."""
    item = ev.data.get("item")
    if ev.audio is not None and isinstance(item, dict) and isinstance(item.get("id"), str):
        state.client_audio[item["id"]] = ev.audio


def _response(state: SessionState, ev: Event, rid: Any) -> Response:
    rid = as_str(rid, "response id")
    r = state.responses.get(rid)
    if r is None:
        anomaly(state, ev, "unknown_response", f"{rid} was never created")
        r = state.responses[rid] = Response(rid, created_seq=None)
    return r


def response_created(state: SessionState, ev: Event) -> None:
    """A new response; the waiting request with its key is what asked for it (none: server-initiated)."""
    raw = as_dict(ev.data.get("response"), "response")
    rid = as_str(raw.get("id"), "response.id")
    r = Response(rid, status=str(raw.get("status", "in_progress")), conversation_id=raw.get("conversation_id"),
                 metadata=raw.get("metadata"), created_seq=ev.seq, created_mono_ns=ev.mono_ns)
    take_request(state, raw, r)
    set_out_of_band(r, raw)
    if rid in state.responses:
        anomaly(state, ev, "duplicate_response", f"{rid} created twice; the second replaces the first")
    state.responses[rid] = r


def output_item_added(state: SessionState, ev: Event) -> None:
    d = ev.data
    r = _response(state, ev, d.get("response_id"))
    raw = as_dict(d.get("item"), "item")
    iid = as_str(raw.get("id"), "item.id")
    item = state.find_item(iid)
    if item is None:
        item = state.outputs[iid] = new_item(raw, ev.seq)
    else:
        merge_item(item, raw)
    item.response_id = r.id
    if iid not in r.output:
        r.output.append(iid)


def output_item_done(state: SessionState, ev: Event) -> None:
    merge_known_item(state, ev, "delta_for_unknown_item", "is not known")


def response_done(state: SessionState, ev: Event) -> None:
    raw = as_dict(ev.data.get("response"), "response")
    r = _response(state, ev, raw.get("id"))
    if r.created_seq is None and r.request is None and r.done_seq is None:  # a partial log: no response.created
        partial_done(state, raw, r)  # named by its metadata echo only
        r.conversation_id, r.metadata = raw.get("conversation_id"), raw.get("metadata")
    r.status = str(raw.get("status"))
    r.status_details = raw.get("status_details")
    r.usage = raw.get("usage")
    r.final = raw
    r.done_seq, r.done_mono_ns = ev.seq, ev.mono_ns
    output = raw.get("output")
    for o in output if isinstance(output, list) else []:
        if not isinstance(o, dict) or not isinstance(o.get("id"), str):
            anomaly(state, ev, "malformed", "an output item of response.done is not an item object; skipped")
            continue
        item = state.find_item(o.get("id"))
        if item is None:  # output nobody streamed: keep it under the response
            item = state.outputs[o["id"]] = new_item(o, ev.seq)
            item.response_id = r.id
            r.output.append(item.id)
        else:
            merge_item(item, o)
    for iid in r.output:
        if not r.out_of_band and iid in state.outputs:
            anomaly(state, ev, "output_not_in_conversation", f"{iid} of a default-conversation response was never added")


def proxy_close(state: SessionState, ev: Event) -> None:
    state.closed = True


def proxy_problem(state: SessionState, ev: Event) -> None:
    anomaly(state, ev, "proxy", ev.payload[:200])


def not_an_event(state: SessionState, ev: Event) -> None:
    anomaly(state, ev, "not_an_event", f"{ev.type} frame of {len(ev.payload)} characters")


def no_change(state: SessionState, ev: Event) -> None:
    """Events that carry no conversation state (acks, VAD timing, rate limits, progress markers)."""


HANDLERS: dict[str, Handler] = {
    # client (intent)
    "session.update": no_change,
    "input_audio_buffer.append": buffer_append,
    "input_audio_buffer.commit": no_change,
    "input_audio_buffer.clear": no_change,
    "conversation.item.create": client_item_create,
    "conversation.item.retrieve": no_change,
    "conversation.item.truncate": no_change,
    "conversation.item.delete": no_change,
    "response.create": response_create,
    "response.cancel": no_change,
    "output_audio_buffer.clear": no_change,
    "transcription_session.update": no_change,  # beta
    # server: session and conversation
    "session.created": session_set,
    "session.updated": session_set,
    "transcription_session.created": session_set,  # beta
    "transcription_session.updated": session_set,  # beta
    "conversation.created": no_change,
    "conversation.item.added": item_upserted,
    "conversation.item.done": item_done,
    "conversation.item.created": item_upserted,  # beta
    "conversation.item.retrieved": item_retrieved,
    "conversation.item.truncated": item_truncated,
    "conversation.item.deleted": item_deleted,
    "conversation.item.input_audio_transcription.delta": transcription,
    "conversation.item.input_audio_transcription.completed": transcription,
    "conversation.item.input_audio_transcription.failed": transcription,
    "conversation.item.input_audio_transcription.segment": no_change,
    # server: input audio buffer
    "input_audio_buffer.speech_started": speech_started,
    "input_audio_buffer.speech_stopped": speech_stopped,
    "input_audio_buffer.committed": buffer_committed,
    "input_audio_buffer.cleared": buffer_cleared,
    "input_audio_buffer.timeout_triggered": timeout_triggered,
    "input_audio_buffer.dtmf_event_received": no_change,
    "output_audio_buffer.started": no_change,
    "output_audio_buffer.stopped": no_change,
    "output_audio_buffer.cleared": no_change,
    "output_audio_buffer.audio_started": no_change,  # beta WebRTC, January 2025 (renamed .started, …)
    "output_audio_buffer.audio_stopped": no_change,
    "output_audio_buffer.audio_cleared": no_change,
    # server: responses
    "response.created": response_created,
    "response.done": response_done,
    "response.output_item.added": output_item_added,
    "response.output_item.done": output_item_done,
    "response.content_part.added": part_added,
    "response.content_part.done": part_added,
    "response.output_text.delta": text_delta("text", "output_text"),
    "response.output_text.done": text_done("text", "output_text", "text"),
    "response.text.delta": text_delta("text", "output_text"),  # beta
    "response.text.done": text_done("text", "output_text", "text"),  # beta
    "response.output_audio_transcript.delta": text_delta("transcript", "output_audio"),
    "response.output_audio_transcript.done": text_done("transcript", "output_audio", "transcript"),
    "response.audio_transcript.delta": text_delta("transcript", "output_audio"),  # beta
    "response.audio_transcript.done": text_done("transcript", "output_audio", "transcript"),  # beta
    "response.output_audio.delta": audio_delta,
    "response.output_audio.done": audio_done,
    "response.audio.delta": audio_delta,  # beta
    "response.audio.done": audio_done,  # beta
    "response.function_call_arguments.delta": arguments_handler(done=False),
    "response.function_call_arguments.done": arguments_handler(done=True),
    "response.mcp_call_arguments.delta": arguments_handler(done=False),
    "response.mcp_call_arguments.done": arguments_handler(done=True),
    "response.mcp_call.in_progress": mcp_call_status("in_progress"),
    "response.mcp_call.completed": mcp_call_status("completed"),
    "response.mcp_call.failed": mcp_call_status("failed"),
    "mcp_list_tools.in_progress": no_change,
    "mcp_list_tools.completed": no_change,
    "mcp_list_tools.failed": no_change,
    "rate_limits.updated": no_change,
    "error": error_event,
    # the proxy's own records and frames that are not events
    "proxy.open": no_change,
    "proxy.close": proxy_close,
    "proxy.error": proxy_problem,
    "proxy.upstream_rejected": proxy_problem,
    "invalid.json": not_an_event,
    "binary": not_an_event,
}


# Runs of rows (analyzer/load.py) applied at once, by the wire type of a channel's rows.
RUN_HANDLERS: dict[str, RunHandler] = {
    "input_audio_buffer.append": INPUT_RUN,
    "response.output_audio.delta": AUDIO_RUN,
    "response.audio.delta": AUDIO_RUN,  # beta
    "response.output_text.delta": TEXT_RUN,
    "response.text.delta": TEXT_RUN,  # beta
    "response.output_audio_transcript.delta": TRANSCRIPT_RUN,
    "response.audio_transcript.delta": TRANSCRIPT_RUN,  # beta
    "response.function_call_arguments.delta": ARGUMENTS_RUN,
    "response.mcp_call_arguments.delta": ARGUMENTS_RUN,
}


def apply(state: SessionState, ev: Event, *, strict: bool = False) -> SessionState:
    """Fold one event into `state` (changed in place and returned)."""
    if ev.run is not None:
        return apply_run(state, ev, strict=strict)
    before = len(state.anomalies)
    if ev.direction == CLIENT:
        client_event_seen(state, ev)
    handler = HANDLERS.get(ev.type)
    if handler is None:
        anomaly(state, ev, "unknown_type", f"no handler for {ev.type!r}")
    else:
        try:
            handler(state, ev)
        except Malformed as exc:
            anomaly(state, ev, "malformed", str(exc))
    if state.last_seq is not None and ev.seq <= state.last_seq:
        anomaly(state, ev, "out_of_order", f"seq {ev.seq} after {state.last_seq}")
    state.last_seq = ev.seq
    if strict and len(state.anomalies) > before:
        raise AnomalyError(str(state.anomalies[before]))
    return state


def apply_run(state: SessionState, ev: Event, *, strict: bool = False) -> SessionState:
    """Fold a run of rows (`ev.run`): each channel at once when every row would take its handler's plain
    path (known item and part, seqs after the state's), else row by row. The state is the same either way;
    the first is O(channels), not O(rows)."""
    run = ev.run
    if state.last_seq is None or run.first_seq > state.last_seq:
        targets = []
        for ch in run.channels:  # their wire types are all in RUN_HANDLERS (the loader coalesces no other)
            target = RUN_HANDLERS[ch.type][0](state, ch)
            if target is None:
                break
            targets.append(target)
        else:
            for ch, target in zip(run.channels, targets):
                RUN_HANDLERS[ch.type][1](state, ch, target)
            state.last_seq = ev.seq
            return state
    for row in run.events():
        apply(state, row, strict=strict)
    return state


def fold(events: Iterable[Event], state: SessionState | None = None, *, strict: bool = False) -> SessionState:
    """Apply `events` in order to `state` (a fresh state when None); the fold owns and returns it."""
    state = SessionState() if state is None else state
    with collector_paused():
        for ev in events:
            apply(state, ev, strict=strict)
    return state


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector: loading, folding and matching allocate many objects and make no cycles,
    and each of its passes would rescan every object alive (a third of a fold's time; matching a 10M-event
    archive took twice as long with it on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def finish(state: SessionState, *, strict: bool = False) -> SessionState:
    """End of the session: responses still in progress (no `response.done` seen) and transcription held for
    an item never added become anomalies."""
    seq = state.last_seq if state.last_seq is not None else -1
    for a in transcription_never_placed(state):
        state.anomalies.append(a)
        if strict:
            raise AnomalyError(str(a))
    for r in state.responses.values():
        if r.status == "in_progress":
            state.anomalies.append(Anomaly(seq, "session.end", "response_without_done", f"{r.id} never got response.done"))
            if strict:
                raise AnomalyError(str(state.anomalies[-1]))
    return state
