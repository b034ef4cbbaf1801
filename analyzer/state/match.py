"""Every client `response.create`, matched to what the server did with it (docs/definitions.md, binding).

Only the rows that decide a match are read: the types in `MATCH_TYPES` and client events that carry an
event_id, filtered inside the Parquet scan (polars pushes the predicate and the column selection into the
reader; the audio column is never read). Per session the events are walked once in seq order:
  1. an `error` naming an event_id answers the latest client event with that id; a response.create so
     named is rejected;
  2. the other requests wait, each with a key (its metadata, whether out-of-band); a `response.created`
     answers the oldest waiting request with its key (echoed metadata, conversation_id null or not) — with
     server VAD the turn's own response.created can come between a request and its answer (protocol
     §11.2), so plain first-in-first-out is wrong; one with no such request is server-initiated. A
     `response.done` without response.created pairs by its metadata echo; an `error` with null event_id
     about a response.create answers the oldest waiting request;
  3. `response.done` of the matched response gives the outcome.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import polars as pl
import pyarrow as pa

from rtreplay.analyzer.state.load import collect
from rtreplay.analyzer.state.request import (  # is_ordered_rejection: reports and replay take it from here
    FORCED_FORMS, Request, answer_key, fits, is_ordered_rejection, request_key,
)
from rtreplay.analyzer.state.session import Event
from rtreplay.recorder.archive import ArchiveProblem
from rtreplay.recorder.store import Archive
from rtreplay.recorder.schema import CLIENT, PROXY_OPEN, SERVER

MATCH_TYPES = ("response.create", "response.created", "response.done", "error", "session.created",
               "session.updated", PROXY_OPEN)
MATCH_COLUMNS = ("session_id", "seq", "ts", "mono_ns", "direction", "type", "event_id", "response_id", "payload")


# How sure each way of pairing is (docs/definitions.md, "Matching" 4); `conversation` is high only for an
# out-of-band request, which no server-initiated response can be taken for.
CONFIDENCE = {"error_event_id": "high", "metadata": "high", "done_metadata": "high", "conversation": "high",
              "order": "low", "error_order": "low"}


def tool_choice_form(present: bool, value: Any) -> str:
    """The form of a `tool_choice` value (docs/definitions.md table); `present` tells absent from null."""
    if not present:
        return "absent"
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict):
        if value.get("type") == "function" and isinstance(value.get("name"), str):
            return "function"
        if value.get("type") == "mcp" and isinstance(value.get("server_label"), str):
            return "mcp"
    return "invalid"


def forced_call_happened(form: str, choice: Any, output: Any) -> bool:
    """Whether a finished response's output holds the call its effective tool_choice forced."""
    items = [o for o in output if isinstance(o, dict)] if isinstance(output, list) else []
    for o in items:
        kind = o.get("type")
        if form == "required" and kind in ("function_call", "mcp_call"):
            return True
        if form == "function" and kind == "function_call" and o.get("name") == choice.get("name"):
            return True
        if form == "mcp" and kind == "mcp_call" and o.get("server_label") == choice.get("server_label") and (
                not isinstance(choice.get("name"), str) or o.get("name") == choice.get("name")):
            return True
    return False


@dataclass
class SessionMatch:
    requests: list[Request]
    server_initiated: list[str]  # ids of responses nobody asked for (turn detection)


@dataclass
class MatchResult:
    requests: list[Request] = field(default_factory=list)
    server_initiated: dict[str, list[str]] = field(default_factory=dict)
    problems: list[ArchiveProblem] = field(default_factory=list)


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _model_from_open(payload: dict) -> str | None:
    query = payload.get("query")
    if not isinstance(query, str):
        path = payload.get("path")
        query = path.partition("?")[2] if isinstance(path, str) else ""
    models = parse_qs(query.lstrip("?")).get("model")
    return models[0] if models else None


def match_events(events: Sequence[Event], session_id: str = "") -> list[Request]:
    return match_session(events, session_id).requests


def _take(waiting: list[tuple[int, tuple]], key: tuple) -> tuple[int, int] | None:
    """The oldest waiting request (index, key) with this answer key, and how many had it; None when none."""
    same = [k for k, (_, wkey) in enumerate(waiting) if fits(wkey, key)]
    if not same:
        return None
    return waiting.pop(same[0])[0], len(same)


def _rejections(events: Sequence[Event]) -> dict[int, Event]:
    """Rule 1: an error naming an event_id answers the latest client event before it with that id."""
    latest: dict[str, int] = {}
    rejected: dict[int, Event] = {}
    for i, e in enumerate(events):
        if e.direction == CLIENT:
            eid = e.data.get("event_id")
            if isinstance(eid, str):
                latest[eid] = i
        elif e.type == "error" and e.direction == SERVER:
            eid = _obj(e.data.get("error")).get("event_id")
            j = latest.get(eid) if isinstance(eid, str) else None
            if j is not None and events[j].type == "response.create" and j not in rejected:
                rejected[j] = e
    return rejected


def match_session(events: Sequence[Event], session_id: str = "") -> SessionMatch:
    """Match the requests of one session; `events` sorted by seq (other types are ignored)."""
    rejected = _rejections(events)  # rule 1 takes a request out of the walk altogether
    session: dict = {}
    open_model: str | None = None
    waiting: list[tuple[int, tuple]] = []  # (request index, request key)
    answers: dict[int, tuple[str, Event, str]] = {}  # request index -> (kind, event, pairing)
    done: dict[str, Event] = {}
    created_by: dict[str, int] = {}
    seen: set[str] = set()  # response ids whose response.created (or first done) was walked
    server_initiated: list[str] = []
    context: dict[int, tuple[dict, str | None]] = {}  # request index -> (session config, open model)
    for i, e in enumerate(events):
        t = e.type
        if t == "response.create" and e.direction == CLIENT:
            context[i] = (session, open_model)
            if i not in rejected:
                waiting.append((i, request_key(e.data.get("response"))))
        elif e.direction != SERVER:
            if t == PROXY_OPEN:
                open_model = _model_from_open(e.data)
        elif t in ("session.created", "session.updated"):
            session = _obj(e.data.get("session"))
        elif t == "response.created":
            resp = _obj(e.data.get("response"))
            rid = e.response_id or resp.get("id")
            if isinstance(rid, str):
                seen.add(rid)
            key = answer_key(resp)
            got = _take(waiting, key)
            if got is not None:
                j, n = got
                answers[j] = ("created", e, "order" if n > 1 else "metadata" if key[0] else "conversation")
                if isinstance(rid, str):
                    created_by[rid] = j
            elif isinstance(rid, str):
                server_initiated.append(rid)
        elif t == "response.done":
            resp = _obj(e.data.get("response"))
            rid = e.response_id or resp.get("id")
            if not isinstance(rid, str):
                continue
            if rid not in seen:  # a partial log: no response.created; paired by its metadata echo
                seen.add(rid)
                key = answer_key(resp)
                got = _take(waiting, key) if key[0] else None
                if got is not None:
                    j, n = got
                    answers[j] = ("done", e, "order" if n > 1 else "done_metadata")
                    created_by[rid] = j
            if rid in created_by and rid not in done:
                done[rid] = e
        elif t == "error" and waiting and is_ordered_rejection(_obj(e.data.get("error"))):
            answers[waiting.pop(0)[0]] = ("error", e, "error_order")
    out = [_request(events[i], session_id, *context[i], rejected.get(i), answers.get(i), done)
           for i in sorted(context)]
    return SessionMatch(out, server_initiated)


def _request(e: Event, session_id: str, session: dict, open_model: str | None, rejected_by: Event | None,
             answer: tuple[str, Event, str] | None, done: dict[str, Event]) -> Request:
    params = _obj(e.data.get("response"))
    conversation = params["conversation"] if isinstance(params.get("conversation"), str) else "auto"
    inp = params.get("input")
    modalities = params.get("output_modalities")
    tools = params.get("tools")
    form_sent = tool_choice_form("tool_choice" in params, params.get("tool_choice"))
    if form_sent == "absent":
        choice = session.get("tool_choice")
        form_effective = tool_choice_form("tool_choice" in session, choice) if session else "auto"
        form_effective = "auto" if form_effective == "absent" else form_effective
    else:
        choice, form_effective = params.get("tool_choice"), form_sent
    forced_name = None
    if form_effective == "function":
        forced_name = choice["name"]
    elif form_effective == "mcp":
        forced_name = choice["server_label"]
    model = session.get("model") if isinstance(session.get("model"), str) else open_model
    fields: dict[str, Any] = {"outcome": "unfinished"}
    if rejected_by is not None or (answer is not None and answer[0] == "error"):
        err_event = rejected_by if rejected_by is not None else answer[1]  # type: ignore[index]
        err = _obj(err_event.data.get("error"))
        pairing = "error_event_id" if rejected_by is not None else "error_order"
        fields = dict(outcome="rejected", error_type=err.get("type"), error_code=err.get("code"),
                      pairing=pairing, confidence=CONFIDENCE[pairing], answer_seq=err_event.seq,
                      latency_ms=(err_event.mono_ns - e.mono_ns) / 1e6)
    elif answer is not None:
        kind, answered_by, pairing = answer
        rid = answered_by.response_id or _obj(answered_by.data.get("response")).get("id")
        sure = CONFIDENCE[pairing] if pairing != "conversation" or conversation == "none" else "low"
        fields = dict(outcome="unfinished", response_id=rid, pairing=pairing, confidence=sure,
                      answer_seq=answered_by.seq)
        fin = done.get(rid) if isinstance(rid, str) else None
        if fin is not None:
            final = _obj(fin.data.get("response"))
            status = final.get("status")
            details = _obj(final.get("status_details"))
            error = _obj(details.get("error"))
            fields.update(done_seq=fin.seq, latency_ms=(fin.mono_ns - e.mono_ns) / 1e6)
            if status in ("completed", "cancelled", "incomplete"):
                fields["outcome"] = status
                if status != "completed":
                    fields["reason"] = details.get("reason")
            else:
                fields.update(outcome="failed", error_type=error.get("type") if status == "failed" else status,
                              error_code=error.get("code"))
            if form_effective in FORCED_FORMS:
                fields["forced_call"] = forced_call_happened(form_effective, _obj(choice), final.get("output"))
    event_id = e.data.get("event_id")
    return Request(
        session_id=session_id, seq=e.seq, ts=dt.datetime.fromtimestamp(e.ts_us / 1e6, dt.timezone.utc),
        payload=e.payload, event_id=event_id if isinstance(event_id, str) else None,
        scope="out-of-band" if conversation == "none" else "default", conversation=conversation,
        input_kind="absent" if not isinstance(inp, list) else ("items" if inp else "empty"),
        output_modalities="+".join(map(str, modalities)) if isinstance(modalities, list) else None,
        tools_count=len(tools) if isinstance(tools, list) else None,
        metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
        model=model, tool_choice=params.get("tool_choice"), form_sent=form_sent,  # type: ignore[arg-type]
        form_effective=form_effective, forced_name=forced_name, **fields,  # type: ignore[arg-type]
    )


def _frame(source: str | Path | pa.Table | pl.DataFrame | pl.LazyFrame,
           problems: list[ArchiveProblem]) -> pl.DataFrame:
    """The match-relevant rows of `source`, sorted by (session_id, seq); ts as epoch microseconds."""
    if isinstance(source, (str, Path, Archive)):
        return collect(source, _match_rows, problems)  # a damaged file is named and left out
    if isinstance(source, pa.Table):
        lazy = pl.from_arrow(source.select(list(MATCH_COLUMNS))).lazy()  # type: ignore[union-attr]
    else:
        lazy = source.lazy()
    return _match_rows(lazy).collect()


def _match_rows(lazy: pl.LazyFrame) -> pl.LazyFrame:
    # Client events of any type that carry an event_id: an error naming one answers it (definitions rule 1).
    wanted = pl.col("type").is_in(MATCH_TYPES) | ((pl.col("direction") == CLIENT) & pl.col("event_id").is_not_null())
    return (lazy.filter(wanted)
            .select([pl.col(c) for c in MATCH_COLUMNS])
            .with_columns(pl.col("ts").dt.epoch("us"))
            .sort(["session_id", "seq"]))


def match(source: str | Path | pa.Table | pl.DataFrame | pl.LazyFrame,
          sessions: Iterable[str] | None = None) -> MatchResult:
    """Match every request of `source` (an archive path, an Arrow table or a polars frame of events)."""
    result = MatchResult()
    df = _frame(source, result.problems)
    if sessions is not None:
        df = df.filter(pl.col("session_id").is_in(list(sessions)))
    for (sid,), part in df.group_by(["session_id"], maintain_order=True):
        evs = [Event(seq, t, d, p, None, None, r, m, ts)
               for _, seq, ts, m, d, t, _eid, r, p in part.iter_rows()]
        sm = match_session(evs, sid)  # type: ignore[arg-type]
        result.requests.extend(sm.requests)
        result.server_initiated[sid] = sm.server_initiated  # type: ignore[index]
    return result


def requests(source: str | Path | pa.Table | pl.DataFrame | pl.LazyFrame,
             sessions: Iterable[str] | None = None) -> list[Request]:
    """The `Request` records of `source`, in (session_id, seq) order."""
    return match(source, sessions).requests
