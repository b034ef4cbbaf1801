"""The window-function matching of answers.sql equals the queue counter of docs/definitions.md."""
from __future__ import annotations

from collections import deque

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay import queries
from sql_fixtures import SessionLog

# One step of a session: a request (with or without event_id), a response.created, an error that answers in
# order, an error naming an event_id, or an error that answers nothing.
STEPS = st.lists(st.sampled_from(["req", "req_id", "created", "busy", "param", "by_id", "other"]), max_size=40)


def counter_matching(steps: list[str]) -> dict[int, int | None]:
    """Rule 2 of the definition, straightforwardly: request index -> its answer's index (None: unanswered).

    A counter of waiting requests; an ordered answer takes the oldest, or answers nothing when none waits.
    """
    answers: dict[int, int | None] = {}
    waiting: deque[int] = deque()
    for i, step in enumerate(steps):
        if step == "req":
            answers[i] = None
            waiting.append(i)
        elif step in ("created", "busy", "param") and waiting:
            answers[waiting.popleft()] = i
    return answers


def build(steps: list[str]) -> SessionLog:
    s = SessionLog("20260901T080000000000-prop")
    last_id = None
    for i, step in enumerate(steps):
        if step == "req":
            s.request()
        elif step == "req_id":
            last_id = f"evt_{i}"
            s.request(last_id)
        elif step == "created":
            s.created(f"resp_{i}")
        elif step == "busy":
            s.error("invalid_request_error", "conversation_already_has_active_response")
        elif step == "param":
            s.error("invalid_request_error", "invalid_value", param="response.tools")
        elif step == "by_id":
            s.error("invalid_request_error", "invalid_value", event_id=last_id or "evt_none")
        else:
            s.error("invalid_request_error", "invalid_value", param="item.id")
    return s


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_window_functions_equal_the_queue_counter(steps):
    log = build(steps)
    con = queries.connect(log.table())
    try:
        got = {r["seq"]: r["answer_seq"] for r in con.sql("SELECT seq, answer_seq FROM outcomes").pl().to_dicts()}
    finally:
        con.close()
    assert got == rule_one_first(steps)


def rule_one_first(steps: list[str]) -> dict[int, int | None]:
    """Rule 1 takes a request out of the queue altogether (whenever its error comes); then the counter."""
    rejected: dict[int, int] = {}
    last_id: int | None = None
    for i, step in enumerate(steps):
        if step == "req_id":
            last_id = i
        elif step == "by_id" and last_id is not None and last_id not in rejected:
            rejected[last_id] = i
    answers = counter_matching(["skip" if i in rejected else "req" if s == "req_id" else s
                                for i, s in enumerate(steps)])
    answers.update(rejected)
    return answers
