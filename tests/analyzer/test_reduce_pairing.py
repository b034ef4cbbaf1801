"""The reducer gives every response the request analyzer/state/match.py pairs it with (docs/definitions.md,
"Matching"), so a rebuilt session and `analyze`/SQL never disagree about who asked for what.

The hard part is rule 1: an `error` naming an event_id answers the latest client event before it with that id,
whatever its type. A commit, a cancel or an append that reused a request's event_id takes the error, and the
request goes on waiting; a request so named never waited at all, even when the error comes after a
`response.created` with its key (with server VAD the app's request is refused with
`conversation_already_has_active_response` after the VAD response was created, protocol §11.2).
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.state.match import match
from rtreplay.analyzer.state.rows import session_events
from rtreplay.analyzer.state.timeline import rebuild
from sql_fixtures import SessionLog

STEPS = st.lists(st.sampled_from([
    "req", "req_oob", "req_meta", "req_id", "req_id_oob", "commit_id", "cancel_id", "append_id",
    "created", "created_oob", "created_meta", "created_nokey", "done_meta",
    "busy", "busy_beta", "param", "by_id", "by_id_first", "ghost_id", "other"]), max_size=40)


def build(steps: list[str]) -> SessionLog:
    s = SessionLog("20260901T080000000000-pair")
    ids: list[str] = []
    for i, step in enumerate(steps):
        meta = {"t": "m"} if "meta" in step else None
        last = ids[-1] if ids else "evt_none"
        if s.play(step, i, meta):
            pass
        elif step.startswith("req_id"):
            ids.append(f"evt_{i}")
            s.request(ids[-1], **({"conversation": "none"} if step.endswith("oob") else {}))
        elif step == "commit_id":
            s.client("input_audio_buffer.commit", event_id=last)
        elif step == "cancel_id":
            s.client("response.cancel", event_id=last)
        elif step == "append_id":  # audio in the archive column: consecutive appends load as one run
            s.client("input_audio_buffer.append", event_id=last)
            s.rows[-1]["audio"] = b"\x00\x01"
        elif step == "by_id":
            s.error("invalid_request_error", "conversation_already_has_active_response", event_id=last)
        elif step == "by_id_first":
            s.error("invalid_request_error", "invalid_value", event_id=ids[0] if ids else "evt_none")
        elif step == "ghost_id":
            s.error("invalid_request_error", "invalid_value", event_id="evt_ghost")
        else:
            s.error("invalid_request_error", "invalid_value", param="item.id")
    return s


def check(steps: list[str]) -> None:
    log = build(steps)
    table = log.table()
    result = match(table)
    state = rebuild(session_events(table), log.session_id)
    want = {r.response_id: r.seq for r in result.requests if r.response_id is not None}
    got = {rid: r.request_seq for rid, r in state.responses.items() if r.request_seq is not None}
    assert got == want
    nobody = [rid for rid, r in sorted(state.responses.items(), key=lambda kv: kv[1].created_seq or -1)
              if r.request_seq is None and r.created_seq is not None]
    assert nobody == result.server_initiated.get(log.session_id, [])
    still = [r.seq for r in result.requests if r.outcome == "unfinished" and r.pairing is None]
    assert [seq for seq, _, _ in state.waiting_requests] == still


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_reducer_pairs_as_match(steps):
    check(steps)


def test_an_error_naming_a_commit_that_reused_a_request_id_rejects_no_request():
    # request evt_0, commit reusing evt_0, the error names evt_0: the commit's (the latest client event with it)
    check(["req_id", "commit_id", "by_id", "created"])


def test_a_request_refused_after_the_vad_response_was_created_never_had_it():
    # the VAD response.created comes first; the error naming the request refuses it: the response is nobody's
    check(["req_id", "created", "by_id"])


def test_a_refused_request_is_not_the_one_an_ordered_error_answers():
    check(["req_id", "req", "busy", "by_id_first", "created"])


def test_an_append_that_reused_a_request_id_takes_the_error():
    check(["req_id", "append_id", "append_id", "by_id", "created"])
