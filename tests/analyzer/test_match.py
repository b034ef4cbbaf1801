"""Request/outcome matching per docs/definitions.md, on hand-written sessions and a generated archive."""
from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest

from rtreplay.analyzer.state.match import match_session, requests, tool_choice_form
from events_factory import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate_archive  # noqa: E402


@pytest.mark.parametrize("present,value,form", [
    (False, None, "absent"), (True, None, "invalid"), (True, "auto", "auto"), (True, "none", "none"),
    (True, "required", "required"), (True, {"type": "function", "name": "f"}, "function"),
    (True, {"type": "mcp", "server_label": "crm"}, "mcp"), (True, {"type": "function", "function": {"name": "f"}}, "invalid"),
    (True, "any", "invalid"), (True, {"type": "mcp"}, "invalid"),
])
def test_tool_choice_forms(present, value, form) -> None:
    assert tool_choice_form(present, value) == form


def test_rules_of_matching() -> None:
    s = Session()
    s.ev({"type": "proxy.open", "query": "model=gpt-realtime-mini"}, direction="proxy")
    s.session_created(tool_choice="required", model="gpt-realtime")
    # a server-initiated response first (nobody waiting)
    s.response("r0", "i0", None)
    # 1: forced function, out-of-band, fails with server_error (the seed report)
    s.client({"type": "response.create", "event_id": "c1", "response": {
        "conversation": "none", "tool_choice": {"type": "function", "name": "ret"}, "metadata": {"m": "1"},
        "output_modalities": ["text"], "tools": [{}], "input": []}})
    s.response("r1", "o1", None, oob=True, status="failed", metadata={"m": "1"},
               details={"type": "failed", "error": {"type": "server_error"}})
    # 2: nested form rejected by event_id; 3: rejected in order without event_id
    s.client({"type": "response.create", "event_id": "c2", "response": {"tool_choice": {"type": "function", "function": {"name": "ret"}}}})
    s.client({"type": "response.create"})
    s.ev({"type": "error", "error": {"type": "invalid_request_error", "code": "conversation_already_has_active_response", "event_id": None}})
    s.ev({"type": "error", "error": {"type": "invalid_request_error", "code": "missing_required_parameter", "event_id": "c2"}})
    # 4: absent form takes the session's `required`; the forced call happens
    s.client({"type": "response.create", "response": {}})
    s.response("r4", "f4", None, function="lookup")
    # 5: asked, created, never done
    s.client({"type": "response.create", "response": {"conversation": "none"}})
    s.ev({"type": "response.created", "response": {"id": "r5", "status": "in_progress", "conversation_id": None}})
    # 6: never answered
    s.client({"type": "response.create"})
    sm = match_session(s.events, "S")
    assert sm.server_initiated == ["r0"]
    r1, r2, r3, r4, r5, r6 = sm.requests
    assert (r1.scope, r1.form_sent, r1.outcome, r1.error_type, r1.pairing, r1.forced_call, r1.forced_name) == (
        "out-of-band", "function", "failed", "server_error", "metadata", False, "ret")
    assert (r1.input_kind, r1.output_modalities, r1.tools_count, r1.model, r1.response_id) == ("empty", "text", 1, "gpt-realtime", "r1")
    assert (r2.form_sent, r2.outcome, r2.error_code, r2.pairing, r2.forced_call) == (
        "invalid", "rejected", "missing_required_parameter", "error_event_id", None)
    assert (r3.form_sent, r3.form_effective, r3.outcome, r3.error_code, r3.pairing) == (
        "absent", "required", "rejected", "conversation_already_has_active_response", "error_order")
    assert (r4.form_sent, r4.form_effective, r4.outcome, r4.forced_call, r4.pairing) == (
        "absent", "required", "completed", True, "conversation")
    assert (r5.outcome, r5.response_id, r5.done_seq) == ("unfinished", "r5", None)
    assert (r6.outcome, r6.answer_seq, r6.pairing) == ("unfinished", None, None)
    assert r1.request_id == f"S:{r1.seq}" and r1.latency_ms > 0


def test_model_falls_back_to_the_proxy_open_query() -> None:
    s = Session()
    s.ev({"type": "proxy.open", "path": "/v1/realtime", "query": "model=gpt-realtime-mini"}, direction="proxy")
    s.client({"type": "response.create"})
    (r,) = match_session(s.events, "S").requests
    assert (r.model, r.form_effective) == ("gpt-realtime-mini", "auto")


def test_generated_archive_matches_its_expected_counts(tmp_path) -> None:
    out = tmp_path / "arch"
    expected = generate_archive.generate(out, 30_000, seed=3, minutes=3)
    reqs = requests(out)
    got = collections.Counter((r.form_sent, r.scope, r.outcome) for r in reqs)
    assert got == {(c["form_sent"], c["scope"], c["outcome"]): c["n"] for c in expected["counts"]}
    forced = collections.Counter((r.form_sent, r.scope, r.forced_call) for r in reqs
                                 if r.form_sent in ("required", "function", "mcp") and r.outcome not in ("rejected", "unfinished"))
    assert forced == {(c["form_sent"], c["scope"], c["forced_call"]): c["n"] for c in expected["forced_call"]}
    assert json.loads(generate_archive.sidecar_path(out).read_text())["events"] >= 30_000


def test_the_vad_response_between_a_request_and_its_answer_is_server_initiated() -> None:
    """Protocol §11.2: the turn's VAD response.created arrives after an out-of-band request was sent and before
    that request's own response.created; the request is answered by its metadata echo, not by position."""
    s = Session()
    s.client({"type": "response.create", "response": {"conversation": "none", "metadata": {"t": "1"}}})
    s.response("r_vad", "i_vad", None)  # in-band, no metadata: nobody asked for it
    s.response("r_oob", "i_oob", None, oob=True, metadata={"t": "1"})
    # an out-of-band request without metadata: the conversation_id null tells its answer apart
    s.client({"type": "response.create", "response": {"conversation": "none"}})
    s.response("r_vad2", "i_vad2", None)
    s.response("r_oob2", "i_oob2", None, oob=True)
    # two indistinguishable in-band requests: order decides, with low confidence
    s.client({"type": "response.create"})
    s.client({"type": "response.create"})
    s.response("r_a", "i_a", None)
    s.response("r_b", "i_b", None)
    # a partial log: the response.done alone names its request by the metadata echo
    s.client({"type": "response.create", "response": {"conversation": "none", "metadata": {"t": "5"}}})
    s.ev({"type": "response.done", "response": {"id": "r_late", "status": "completed", "conversation_id": None,
                                                 "metadata": {"t": "5"}, "output": []}})
    # an error naming a commit's event_id answers the commit, not the waiting request
    s.client({"type": "response.create", "event_id": "same"})
    s.client({"type": "input_audio_buffer.commit", "event_id": "same"})
    s.ev({"type": "error", "error": {"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
                                     "event_id": "same"}})
    sm = match_session(s.events, "S")
    got = [(r.response_id, r.pairing, r.confidence, r.outcome) for r in sm.requests]
    assert got == [("r_oob", "metadata", "high", "completed"), ("r_oob2", "conversation", "high", "completed"),
                   ("r_a", "order", "low", "completed"), ("r_b", "conversation", "low", "completed"),
                   ("r_late", "done_metadata", "high", "completed"), (None, None, None, "unfinished")]
    assert sm.server_initiated == ["r_vad", "r_vad2"]


BETA_BUSY = {"type": "invalid_request_error", "code": None, "message": "Conversation already has an active response",
             "param": None, "event_id": None}  # as beta servers sent it (tests/data/real, openai-realtime-agents#3)


def test_the_beta_active_response_error_without_a_code_is_an_ordered_rejection() -> None:
    """The beta server sent "Conversation already has an active response" with code null: it refuses the oldest
    waiting request like the GA error with its code does, so the VAD response that follows is nobody's."""
    s = Session()
    s.client({"type": "response.create"})
    s.ev({"type": "error", "error": BETA_BUSY})
    s.response("r_vad", "i_vad", None)
    sm = match_session(s.events, "S")
    (r,) = sm.requests
    assert (r.outcome, r.pairing, r.error_type, r.error_code) == ("rejected", "error_order", "invalid_request_error", None)
    assert sm.server_initiated == ["r_vad"]
