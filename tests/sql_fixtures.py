"""Hand-written archives covering every case of docs/definitions.md, for the SQL view tests.

`write_golden(root)` writes them and returns `EXPECTED`: per request (session, seq) the outcome, pairing,
forms and forced call the definition gives — worked out by hand, not by either implementation.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rtreplay.recorder import archive
from rtreplay.recorder.schema import CLIENT, EVENT_SCHEMA, PROXY, SERVER, VERSION_KEY

START = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.timezone.utc)
USAGE = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
         "input_token_details": {"cached_tokens": 5, "text_tokens": 15, "audio_tokens": 5},
         "output_token_details": {"text_tokens": 4, "audio_tokens": 6}}


class SessionLog:
    """Events of one session in the order the proxy saw them; 10 ms apart on both clocks."""

    def __init__(self, session_id: str, start: dt.datetime = START) -> None:
        self.session_id = session_id
        self.start = start
        self.rows: list[dict[str, Any]] = []

    def emit(self, direction: str, event: dict[str, Any]) -> int:
        seq = len(self.rows)
        payload = json.dumps(event)
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        self.rows.append({
            "session_id": self.session_id, "seq": seq, "ts": self.start + dt.timedelta(milliseconds=10 * seq),
            "mono_ns": 10_000_000 * seq, "direction": direction, "type": event["type"],
            "event_id": event.get("event_id") if direction == CLIENT else None,
            "response_id": event.get("response_id") or response.get("id"),
            "item_id": event.get("item_id") or item.get("id"),
            "payload": payload, "audio": None, "audio_at": None, "size": len(payload),
        })
        return seq

    def client(self, type_: str, **fields: Any) -> int:
        return self.emit(CLIENT, {"type": type_, **fields})

    def server(self, type_: str, **fields: Any) -> int:
        return self.emit(SERVER, {"type": type_, "event_id": f"event_{len(self.rows)}", **fields})

    def proxy(self, type_: str, **fields: Any) -> int:
        return self.emit(PROXY, {"type": type_, **fields})

    # Shorthands for the events the definitions are about.
    def request(self, event_id: str | None = None, **response: Any) -> int:
        extra = {"event_id": event_id} if event_id else {}
        return self.client("response.create", **extra, response=response)

    def created(self, rid: str, metadata: dict | None = None) -> int:
        return self.server("response.created", response={"id": rid, "status": "in_progress", "output": [],
                                                          "metadata": metadata})

    def done(self, rid: str, status: str = "completed", output: list | None = None, details: dict | None = None,
             metadata: dict | None = None) -> int:
        return self.server("response.done", response={
            "id": rid, "status": status, "status_details": details, "output": output or [], "usage": USAGE,
            "metadata": metadata})

    def error(self, type_: str, code: str | None, event_id: str | None = None, param: str | None = None) -> int:
        return self.server("error", error={"type": type_, "code": code, "message": f"{type_}/{code}",
                                           "param": param, "event_id": event_id})

    def play(self, step: str, i: int, metadata: dict | None) -> bool:
        """One step of a random pairing session that names no event_id (the Hypothesis builders of the reducer's
        and SQL's matching tests; each adds its own steps that do): a request (`req`, `req_oob`, `req_meta…`:
        out of band with metadata), `created…` (with `_oob`/`_nokey`: conversation none/absent) then its done,
        a `done_meta…` without its created, the active-response error (`busy`, `busy_beta`: the beta's code
        null), or an `invalid_value` error (`param`). False: not one of these."""
        if step == "req":
            self.request()
        elif step == "req_oob":
            self.request(conversation="none")
        elif step.startswith("req_meta"):
            self.request(conversation="none", metadata=metadata)
        elif step.startswith("created"):
            response = {"id": f"resp_{i}", "status": "in_progress", "output": [], "metadata": metadata}
            if step != "created_nokey":
                response["conversation_id"] = "conv_1" if step == "created" else None
            self.server("response.created", response=response)
            self.done(f"resp_{i}", metadata=metadata)
        elif step.startswith("done_meta"):
            self.server("response.done", response={"id": f"resp_{i}", "status": "completed", "output": [],
                                                    "conversation_id": None, "metadata": metadata})
        elif step == "busy":
            self.error("invalid_request_error", "conversation_already_has_active_response")
        elif step == "busy_beta":
            self.server("error", error={"type": "invalid_request_error", "code": None, "param": None,
                                        "event_id": None, "message": "Conversation already has an active response"})
        elif step == "param":
            self.error("invalid_request_error", "invalid_value", param="response.tools")
        else:
            return False
        return True

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=EVENT_SCHEMA)


# (session, seq) -> expected fields; filled by the builders below.
Expected = dict[tuple[str, int], dict[str, Any]]


def _basics(e: Expected) -> SessionLog:
    s = SessionLog("20260901T080000000000-basics")
    s.proxy("proxy.open", path="/v1/realtime", query="model=gpt-realtime-mini")
    s.server("session.created", session={"model": "gpt-realtime", "tool_choice": "auto"})
    # forced function, out-of-band, metadata echoed: failed with server_error (the seed report)
    q = s.request(conversation="none", input=[], metadata={"k": "oob"}, output_modalities=["text"],
                  tools=[{"type": "function", "name": "lookup"}],
                  tool_choice={"type": "function", "name": "lookup"})
    s.created("resp_1", metadata={"k": "oob"})
    s.done("resp_1", "failed", details={"type": "failed", "error": {"type": "server_error"}})
    e[(s.session_id, q)] = dict(outcome="failed", pairing="metadata", form_sent="function",
                                form_effective="function", forced_call=False, error_type="server_error",
                                scope="out-of-band", input_kind="empty", model="gpt-realtime")
    # required, default conversation: the function call is made; the app answers it
    q = s.request(tool_choice="required", tools=[{}, {}], input=[{"type": "message"}])
    s.created("resp_2")
    s.server("response.output_text.delta", response_id="resp_2", delta="x")
    s.server("response.function_call_arguments.done", response_id="resp_2", call_id="call_2", name="lookup",
             arguments="{}")
    s.done("resp_2", output=[{"type": "function_call", "name": "lookup", "call_id": "call_2", "arguments": "{}"}])
    s.client("conversation.item.create", item={"type": "function_call_output", "call_id": "call_2", "output": "42"})
    e[(s.session_id, q)] = dict(outcome="completed", pairing="conversation", form_sent="required",
                                form_effective="required", forced_call=True, input_kind="items")
    # nested function form: rejected by event_id
    q = s.request("evt_bad", tool_choice={"type": "function", "function": {"name": "x"}})
    s.error("invalid_request_error", "missing_required_parameter", event_id="evt_bad", param="response.tool_choice.name")
    e[(s.session_id, q)] = dict(outcome="rejected", pairing="error_event_id", form_sent="invalid",
                                form_effective="invalid", forced_call=None, error_code="missing_required_parameter")
    # absent tool_choice; null-event_id rejection in order (one response already active)
    q = s.request()
    s.error("invalid_request_error", "conversation_already_has_active_response")
    e[(s.session_id, q)] = dict(outcome="rejected", pairing="error_order", form_sent="absent", form_effective="auto",
                                forced_call=None, error_code="conversation_already_has_active_response")
    # errors that answer nothing: unrelated null-id error, an id naming another client event, an ordered
    # rejection with no request waiting
    s.client("conversation.item.create", event_id="evt_item", item={"type": "message"})
    s.error("invalid_request_error", "invalid_value", param="item.id")
    s.error("invalid_request_error", "invalid_value", event_id="evt_item")
    s.error("invalid_request_error", "conversation_already_has_active_response")
    # a server-initiated response (turn detection)
    s.server("input_audio_buffer.speech_started", item_id="item_u1", audio_start_ms=100)
    s.server("input_audio_buffer.speech_stopped", item_id="item_u1", audio_end_ms=1600)
    s.created("resp_vad")
    s.server("response.output_audio.delta", response_id="resp_vad", delta="")
    s.done("resp_vad")
    q = s.request(tool_choice="none")
    s.created("resp_3")
    s.done("resp_3", "cancelled", details={"type": "cancelled", "reason": "client_cancelled"})
    e[(s.session_id, q)] = dict(outcome="cancelled", form_sent="none", forced_call=None, reason="client_cancelled")
    q = s.request(tool_choice=None)  # JSON null: invalid
    s.created("resp_4")
    s.done("resp_4", "incomplete", details={"type": "incomplete", "reason": "max_output_tokens"})
    e[(s.session_id, q)] = dict(outcome="incomplete", form_sent="invalid", reason="max_output_tokens")
    q = s.request(tool_choice={"type": "mcp", "server_label": "srv"})
    s.created("resp_5")
    s.done("resp_5", output=[{"type": "mcp_call", "server_label": "srv", "name": "t", "output": "ok"}])
    e[(s.session_id, q)] = dict(outcome="completed", form_sent="mcp", form_effective="mcp", forced_call=True)
    # the session's tool_choice is in effect when the request sends none
    s.server("session.updated", session={"model": "gpt-realtime", "tool_choice": "required"})
    q = s.request()
    s.created("resp_6")
    s.done("resp_6", "weird")
    e[(s.session_id, q)] = dict(outcome="failed", form_sent="absent", form_effective="required",
                                forced_call=False, error_type="weird")
    # two indistinguishable requests: order decides; a partial log's response.done pairs by metadata
    q = s.request(conversation="none")
    q2 = s.request(conversation="none")
    s.created("resp_7a")
    s.done("resp_7a")
    s.created("resp_7b")
    s.done("resp_7b", "failed", details={"type": "failed", "error": {"type": "server_error"}})
    e[(s.session_id, q)] = dict(outcome="completed", pairing="order", confidence="low", scope="out-of-band")
    e[(s.session_id, q2)] = dict(outcome="failed", pairing="conversation", confidence="high")
    q = s.request(conversation="none", metadata={"late": "1"})
    s.done("resp_7c", "failed", details={"type": "failed", "error": {"type": "server_error"}},
           metadata={"late": "1"})
    e[(s.session_id, q)] = dict(outcome="failed", pairing="done_metadata", confidence="high")
    # null-event_id rejection by param "response.*"
    q = s.request(tool_choice="auto")
    s.error("invalid_request_error", "invalid_value", param="response.tool_choice")
    e[(s.session_id, q)] = dict(outcome="rejected", pairing="error_order", form_sent="auto")
    # metadata sent but echoed differently: not its answer (resp_7 is nobody's); event_id sent but never
    # named by an error (it waits to the end: no answer has its key)
    q = s.request("evt_x", conversation="none", metadata={"a": "1"})
    s.created("resp_7", metadata={"a": "2"})
    s.done("resp_7")
    e[(s.session_id, q)] = dict(outcome="unfinished", pairing=None, scope="out-of-band", input_kind="absent")
    # answered but never finished, and never answered
    q = s.request()
    s.created("resp_8")
    e[(s.session_id, q)] = dict(outcome="unfinished", pairing="conversation", confidence="low", forced_call=None)
    q = s.request(conversation="none")
    e[(s.session_id, q)] = dict(outcome="unfinished", pairing=None, confidence=None)
    return s


def _no_session_event(e: Expected) -> SessionLog:
    s = SessionLog("20260902T090000000000-nosess", START + dt.timedelta(days=1))
    s.proxy("proxy.open", path="/v1/realtime?model=gpt-realtime-mini", query=None)
    q = s.request()
    s.created("resp_a")
    s.done("resp_a")
    s.proxy("proxy.close", code=1000)
    e[(s.session_id, q)] = dict(outcome="completed", form_sent="absent", form_effective="auto",
                                model="gpt-realtime-mini")
    return s


def _journaled(e: Expected) -> SessionLog:
    s = SessionLog("20260902T100000000000-open", START + dt.timedelta(days=1))
    s.server("session.created", session={"model": "gpt-realtime", "tool_choice": "auto"})
    q = s.request(tool_choice="auto")
    s.created("resp_j")
    s.done("resp_j")
    e[(s.session_id, q)] = dict(outcome="completed", form_sent="auto")
    return s


def _old_schema(e: Expected) -> SessionLog:
    s = SessionLog("20260901T110000000000-v1")
    q = s.request(tool_choice="required")
    s.created("resp_v1")
    s.done("resp_v1", "failed", details={"type": "failed", "error": {"type": "server_error", "code": "x"}})
    e[(s.session_id, q)] = dict(outcome="failed", form_sent="required", forced_call=False, error_code="x")
    return s


def write_journal(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, table.schema) as writer:
        writer.write_table(table)


def write_golden(root: Path) -> Expected:
    """Write the golden archive under `root` (two Parquet sessions, one v1 file, one open journal)."""
    expected: Expected = {}
    for log in (_basics(expected), _no_session_event(expected)):
        archive.write_parquet(log.table(), archive.parquet_path(root, log.session_id))
    old = _old_schema(expected)
    v1 = old.table().drop_columns(["audio", "audio_at"]).replace_schema_metadata({VERSION_KEY: b"1"})
    path = archive.parquet_path(root, old.session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(v1, path)
    live = _journaled(expected)
    write_journal(live.table(), archive.journal_path(root, live.session_id))
    return expected
