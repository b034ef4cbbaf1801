"""A session's state at chosen moments, and its events as a readable timeline.

`state_at` folds up to one seq; `states_before` gets many points of one session in a single pass (replay
needs the state just before every out-of-band request), taking a deep copy at each point.
"""
from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rtreplay.analyzer.state.match import match_events
from rtreplay.analyzer.state.reduce import finish, fold
from rtreplay.analyzer.state.session import TOP_LEVEL_AUDIO, Event, SessionState
from rtreplay.recorder.schema import PROXY_CLOSE, PROXY_ERROR, PROXY_OPEN


def rebuild(events: Sequence[Event], session_id: str | None = None, *, strict: bool = False) -> SessionState:
    """The state after every event of a finished session, with end-of-session anomalies."""
    return finish(fold(events, SessionState(session_id=session_id), strict=strict), strict=strict)


def _prefix(events: Sequence[Event], seqs: Sequence[int], seq: int) -> tuple[int, Event | None]:
    """How many events lie wholly at or before `seq`, and the head of a run that straddles it."""
    i = bisect.bisect_right(seqs, seq)
    if i < len(events) and events[i].run is not None and events[i].first_seq <= seq:
        return i, events[i].head(seq)
    return i, None


def state_at(events: Sequence[Event], seq: int, session_id: str | None = None, *, strict: bool = False) -> SessionState:
    """The state just after the event numbered `seq` (events sorted by seq). One fold from the start;
    use `History` to ask for many points of one session."""
    i, partial = _prefix(events, [e.seq for e in events], seq)
    state = fold(events[:i], SessionState(session_id=session_id), strict=strict)
    return fold([partial], state, strict=strict) if partial is not None else state


def states_before(events: Sequence[Event], seqs: Iterable[int], session_id: str | None = None) -> dict[int, SessionState]:
    """For each seq, the state just before that event (all events with a smaller seq), in one pass."""
    return dict(iter_states_before(events, seqs, session_id))


def iter_states_before(events: Sequence[Event], seqs: Iterable[int],
                       session_id: str | None = None) -> Iterator[tuple[int, SessionState]]:
    """`states_before` one state at a time, in seq order: only the state being folded and the one handed
    out are alive at once (replay plans long sessions this way)."""
    all_seqs = [e.seq for e in events]
    state = SessionState(session_id=session_id)
    done = 0
    for target in sorted(set(seqs)):
        i, partial = _prefix(events, all_seqs, target - 1)
        fold(events[done:i], state)
        done = i
        snap = state.copy()
        yield target, (fold([partial], snap) if partial is not None else snap)


class History:
    """One session's events with a snapshot every `every` events, taken during one full fold.

    `state_at(seq)` then costs one copy of the nearest earlier snapshot plus at most `every` events,
    whatever the session's length. Snapshots are deep copies, so answers never share state.
    """

    def __init__(self, events: Sequence[Event], session_id: str | None = None, every: int = 2048) -> None:
        self.events = events
        self.seqs = [e.seq for e in events]
        self.snapshots: list[tuple[int, SessionState]] = []  # (events folded, state after them)
        state = SessionState(session_id=session_id)
        for i in range(0, len(events), every):
            self.snapshots.append((i, state.copy()))
            fold(events[i:i + every], state)
        self.final = finish(state.copy())

    def state_at(self, seq: int) -> SessionState:
        i, partial = _prefix(self.events, self.seqs, seq)
        j = bisect.bisect_right([k for k, _ in self.snapshots], i) - 1
        if j < 0:
            return SessionState(session_id=self.final.session_id)
        start, snap = self.snapshots[j]
        state = fold(self.events[start:i], snap.copy())
        return fold([partial], state) if partial is not None else state


def seq_of_response(events: Sequence[Event], response_id: str) -> int | None:
    """The seq of the request that started a response (the matched `response.create`), else of its
    `response.created`; None when the response does not occur."""
    for e in events:
        if e.type == "response.created" and e.response_id == response_id:
            for r in match_events(events):
                if r.response_id == response_id:
                    return r.seq
            return e.seq
    return None


# -- readable timeline --------------------------------------------------------------------------------
ARROW = {"client": "→", "server": "←", "proxy": "·"}
AUDIO_TYPES = TOP_LEVEL_AUDIO  # whose size is counted in bytes


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _close_side(close: Any) -> str:
    if not isinstance(close, dict):
        return "no close frame"
    reason = f" {_json(close.get('reason'))}" if close.get("reason") else ""
    return f"{close.get('code')}{reason}"


def _proxy(t: str, d: dict[str, Any]) -> str:
    """Lifecycle records: what the proxy saw, the reason first (JSON, as recorded)."""
    if t == PROXY_CLOSE:
        parts = [f"client {_close_side(d.get('client'))}", f"server {_close_side(d.get('server'))}"]
        for key in ("first_close", "first_disconnect", "stopped"):
            if d.get(key):
                parts.append(f"{key}={d[key]}")
        return f"{t} " + ", ".join(parts)
    if t == PROXY_ERROR:
        rest = {k: v for k, v in d.items() if k != "error"}
        return f"{t} {d.get('error')}" + (f" {_json(rest)}" if rest else "")
    if t == PROXY_OPEN:
        target = f"{d.get('path') or ''}{'?' + d['query'] if d.get('query') else ''}"
        return f"{t} {target} -> {d.get('upstream')}".rstrip()
    return f"{t} {_json(d)}" if d else t


def describe(e: Event) -> str:
    """One line about one event: what happened, with the fields a reader needs (values as JSON)."""
    d = e.data
    t = e.type
    if e.direction == "proxy":
        return _proxy(t, d)
    if t.endswith(".delta") or t == "input_audio_buffer.append":
        n = len(e.audio) if e.audio is not None else len(str(d.get("delta", "")))
        return f"{t} ({n} {'bytes' if e.audio is not None else 'chars'})"
    if t == "response.create":
        r = d.get("response") if isinstance(d.get("response"), dict) else {}
        keys = {k: r[k] for k in ("conversation", "tool_choice", "output_modalities", "metadata") if k in r}
        return f"response.create {_json(keys)}" + (f" event_id={d['event_id']}" if d.get("event_id") else "")
    if t in ("response.created", "response.done"):
        r = d.get("response") if isinstance(d.get("response"), dict) else {}
        extra = f" {_json(r.get('status_details'))}" if r.get("status_details") else ""
        return f"{t} {r.get('id')} status={r.get('status')}{extra}"
    if t == "error":
        err = d.get("error") if isinstance(d.get("error"), dict) else {}
        return f"error {err.get('type')}/{err.get('code')}: {err.get('message')}" + (
            f" (event_id={err['event_id']})" if err.get("event_id") else "")
    if t in ("conversation.item.added", "conversation.item.done", "conversation.item.created"):
        it = d.get("item") if isinstance(d.get("item"), dict) else {}
        return f"{t} {it.get('id')} {it.get('type')}/{it.get('role', '')} after {d.get('previous_item_id')}"
    if t.endswith(".done") and ("transcript" in d or "text" in d or "arguments" in d):
        value = d.get("transcript", d.get("text", d.get("arguments")))
        return f"{t} {_json(value)}"[:200]
    if t == "conversation.item.input_audio_transcription.completed":
        return f"{t} {d.get('item_id')} {_json(d.get('transcript'))}"
    ids = " ".join(str(x) for x in (e.response_id, e.item_id) if x)
    return f"{t} {ids}".rstrip()


def _size(e: Event) -> int:
    return len(e.audio) if e.audio is not None else len(str(e.data.get("delta", "")))


def _pieces(events: Iterable[Event], collapse: bool) -> Iterator[tuple[int, Event, str, int, int]]:
    """(first seq, event, type, rows, size) per event; a run gives one piece per wire type in it (with
    `collapse`) or its rows one by one (without)."""
    for e in events:
        if e.run is None:
            yield e.seq, e, e.type, 1, -1
        elif collapse:
            for first, kind, rows, size in e.run.sizes():
                yield first, e, kind, rows, size
        else:
            yield from ((r.seq, r, r.type, 1, -1) for r in e.run.events())


def timeline(events: Iterable[Event], *, collapse: bool = True) -> Iterator[tuple[int, Event, str, int]]:
    """(first seq, event, text, how many archived rows it stands for); with `collapse`, runs of one
    delta or append type become one line, else one line per archived row."""
    run: list[tuple[int, Event, str, int, int]] = []

    def flush() -> Iterator[tuple[int, Event, str, int]]:
        if run:
            first, e, kind = run[0][:3]
            rows = sum(p[3] for p in run)
            size = sum(p[4] if p[4] >= 0 else _size(p[1]) for p in run)
            unit = "bytes" if (e.audio is not None if run[0][4] < 0 else kind in AUDIO_TYPES) else "chars"
            yield first, e, f"{kind} ×{rows} ({size} {unit})", rows
            run.clear()

    for piece in _pieces(events, collapse):
        first, e, kind = piece[:3]
        if collapse and (kind.endswith(".delta") or kind == "input_audio_buffer.append"):
            if run and run[0][2] != kind:
                yield from flush()
            run.append(piece)
            continue
        yield from flush()
        yield first, e, describe(e), 1
    yield from flush()


def format_ts(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(ts_us / 1e6, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
