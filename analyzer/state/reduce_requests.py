"""Which client `response.create` each response answers, folded event by event (docs/definitions.md,
"Matching"; analyzer/state/match.py is the same walk over a whole session, and answers.sql the same in SQL).

The walk is kept as state: the client event ids seen (`client_ids`), the requests refused by an error
naming them (`rejected`), and the log of what the walk met (`walk`). Rule 1 reaches back: a request named by
an `error` never waited, also when that error comes after a `response.created` with the request's key (with
server VAD the app's request is refused after the VAD response was created, protocol §11.2). When such a
request was already given an answer, the walk is walked again from its log without it; when it is still
waiting, taking it out of the queue is all there is to do (it changed no earlier answer).
"""
from __future__ import annotations

from typing import Any

from rtreplay.analyzer.state.reduce_items import Malformed
from rtreplay.analyzer.state.request import answer_key, fits, is_ordered_rejection, metadata_key, request_key
from rtreplay.analyzer.state.session import Event, Response, SessionState


def client_event_seen(state: SessionState, ev: Event) -> None:
    """Rule 1 looks for the latest client event (of any type) before the error with the named event_id. Only
    ids a response.create carried can name a request: other ids are kept from the first request with them on
    (so the rows of runs, analyzer/state/rows.py, which never carry such an id, need not be seen)."""
    eid = ev.data.get("event_id")
    if isinstance(eid, str) and (ev.type == "response.create" or eid in state.client_ids):
        state.client_ids[eid] = (ev.seq, ev.type)


def response_create(state: SessionState, ev: Event) -> None:
    params = ev.data.get("response")
    params = params if isinstance(params, dict) else None
    entry = (ev.seq, ev.data.get("event_id"), params)
    state.waiting_requests.append(entry)
    state.walk.append(("q", *entry))


def take_request(state: SessionState, raw: dict, r: Response) -> None:
    """Give `r` the oldest waiting request with its key; none: nobody asked for it (turn detection)."""
    key = answer_key(raw)
    state.walk.append(("a", r.id, key))
    got = _take(state.waiting_requests, key)
    r.request_seq, r.request = (got[0], got[2]) if got is not None else (None, None)


def set_out_of_band(r: Response, raw: dict) -> None:
    """Out-of-band by the server's word, conversation_id null (§5.4, §11.1); the request's only without it."""
    if "conversation_id" in raw:
        r.out_of_band = raw["conversation_id"] is None
    else:
        r.out_of_band = r.request is not None and r.request.get("conversation") == "none"


def error_event(state: SessionState, ev: Event) -> None:
    """An error names a client event by event_id (rule 1), or answers the oldest waiting request in order."""
    err = ev.data.get("error")
    if not isinstance(err, dict):
        raise Malformed("error is not an object")
    state.errors.append((ev.seq, ev.type, err))
    eid = err.get("event_id")
    if isinstance(eid, str):
        named = state.client_ids.get(eid)
        if named is not None and named[1] == "response.create" and named[0] not in state.rejected:
            _reject(state, named[0])
    elif is_ordered_rejection(err):
        state.walk.append(("e",))
        if state.waiting_requests:
            state.waiting_requests.pop(0)


def _reject(state: SessionState, seq: int) -> None:
    state.rejected.add(seq)
    for i, (waiting, _, _) in enumerate(state.waiting_requests):
        if waiting == seq:
            del state.waiting_requests[i]
            return
    _rewalk(state)  # it had an answer: the walk without it may give that answer to another request


def _take(queue: list[tuple[int, Any, dict | None]], key: tuple) -> tuple[int, Any, dict | None] | None:
    for i, (_, _, params) in enumerate(queue):
        if fits(request_key(params), key):
            return queue.pop(i)
    return None


def _rewalk(state: SessionState) -> None:
    queue: list[tuple[int, Any, dict | None]] = []
    for entry in state.walk:
        if entry[0] == "q":
            if entry[1] not in state.rejected:
                queue.append(entry[1:])
        elif entry[0] == "e":
            if queue:
                queue.pop(0)
        else:
            got = _take(queue, entry[2])
            r = state.responses.get(entry[1])
            if r is not None:
                r.request_seq, r.request = (got[0], got[2]) if got is not None else (None, None)
                if entry[2][1] is None:  # no conversation_id: out-of-band by the request's word
                    r.out_of_band = r.request is not None and r.request.get("conversation") == "none"
    state.waiting_requests = queue


def partial_done(state: SessionState, raw: dict, r: Response) -> None:
    """A response.done with no response.created before it (a partial log) answers by its metadata echo."""
    if metadata_key(raw.get("metadata")):
        take_request(state, raw, r)
    set_out_of_band(r, raw)
