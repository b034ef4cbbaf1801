"""The recursive walk of answers.sql pairs exactly as analyzer/state/match.py (docs/definitions.md, "Matching").

Random sessions mix what makes pairing hard on real voice traffic (protocol §11.2): server-initiated responses
between a request and its answer, out-of-band requests with and without metadata, indistinguishable requests,
partial logs (a response.done without its response.created), errors naming the event_id of a request or of
another client event, and ordered errors.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay import queries
from rtreplay.analyzer.state.match import match, requests
from sql_fixtures import SessionLog

STEPS = st.lists(st.sampled_from([
    "req", "req_oob", "req_meta1", "req_meta2", "req_id", "commit_id", "cancel_id", "append_id",
    "created", "created_oob", "created_meta1", "created_meta2", "created_nokey", "done_meta1",
    "busy", "busy_beta", "param", "by_id", "other"]), max_size=40)


def build(steps: list[str]) -> SessionLog:
    s = SessionLog("20260901T080000000000-prop")
    last_id = None
    for i, step in enumerate(steps):
        meta = {"t": step[-1]} if "meta" in step else None
        if s.play(step, i, meta):
            pass
        elif step == "req_id":
            last_id = f"evt_{i}"
            s.request(last_id)
        elif step == "commit_id":  # reuses the last request's event_id: an error naming it answers the commit
            s.client("input_audio_buffer.commit", event_id=last_id or "evt_none")
        elif step in ("cancel_id", "append_id"):  # likewise for a cancel and an audio append
            s.client("response.cancel" if step == "cancel_id" else "input_audio_buffer.append",
                     event_id=last_id or "evt_none")
        elif step == "by_id":
            s.error("invalid_request_error", "invalid_value", event_id=last_id or "evt_none")
        else:
            s.error("invalid_request_error", "invalid_value", param="item.id")
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_sql_pairs_as_the_python_walk(steps):
    log = build(steps)
    table = log.table()
    con = queries.connect(table)
    try:
        sql = con.sql("SELECT seq, answer_seq, pairing, confidence, outcome, response_id FROM outcomes").pl()
        initiated = con.sql("SELECT response_id FROM responses WHERE initiated_by = 'server' ORDER BY created_seq")
        server = [r[0] for r in initiated.fetchall()]
    finally:
        con.close()
    got = {r["seq"]: r for r in sql.to_dicts()}
    want = {r.seq: {"seq": r.seq, "answer_seq": r.answer_seq, "pairing": r.pairing, "confidence": r.confidence,
                    "outcome": r.outcome, "response_id": r.response_id} for r in requests(table)}
    assert got == want
    assert server == match(table).server_initiated.get(log.session_id, [])


def test_an_error_names_the_latest_client_event_before_it_with_that_id():
    """errors.caused_by follows rule 1 (docs/definitions.md, "Matching"): the latest client event BEFORE the error
    with the named event_id, of any type — not the first event with that id in the session, nor a later one."""
    s = SessionLog("20260901T080000000000-caus")
    s.request("evt_x")
    first = s.error("invalid_request_error", "invalid_value", event_id="evt_x")  # names the request
    s.client("input_audio_buffer.commit", event_id="evt_x")  # reuses the id
    second = s.error("invalid_request_error", "input_audio_buffer_commit_empty", event_id="evt_x")  # the commit's
    early = s.error("invalid_request_error", "invalid_value", event_id="evt_late")  # nothing sent it yet
    s.client("response.cancel", event_id="evt_late")
    con = queries.connect(s.table())
    try:
        got = dict(con.sql("SELECT seq, caused_by FROM errors WHERE source = 'error'").fetchall())
    finally:
        con.close()
    assert got == {first: "response.create", second: "input_audio_buffer.commit", early: None}


def test_the_beta_active_response_error_without_a_code_rejects_in_order_in_sql_too():
    s = SessionLog("20260901T080000000000-beta")
    req = s.request()
    err = s.server("error", error={"type": "invalid_request_error", "code": None, "param": None, "event_id": None,
                                   "message": "Conversation already has an active response"})
    con = queries.connect(s.table())
    try:
        got = con.sql("SELECT seq, outcome, pairing, answer_seq FROM outcomes").fetchall()
        cause = con.sql("SELECT cause FROM voice_failures WHERE seq = ?", params=[err]).fetchall()
    finally:
        con.close()
    assert got == [(req, "rejected", "error_order", err)]
    assert cause == [("response.create",)]
