"""A factory for hand-made `Request` records, for report tests that need no archive."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rtreplay.analyzer.state.request import Request

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
_TOOL_CHOICE = {
    "absent": None,
    "auto": "auto",
    "none": "none",
    "required": "required",
    "function": {"type": "function", "name": "return_response"},
    "mcp": {"type": "mcp", "server_label": "docs"},
    "invalid": {"type": "function", "function": {"name": "return_response"}},
}
_seq = iter(range(10**9))


def make_request(form: str = "auto", outcome: str = "completed", scope: str = "out-of-band", **fields: Any) -> Request:
    """A Request of `form` with `outcome`; anything else defaults to a plausible value or comes from `fields`."""
    tool_choice = _TOOL_CHOICE[form]
    response: dict[str, Any] = {"conversation": "none" if scope == "out-of-band" else "auto"}
    if form != "absent":
        response["tool_choice"] = tool_choice
    values: dict[str, Any] = dict(
        session_id="20260301T120000000000-fake01",
        seq=next(_seq),
        ts=T0,
        payload=json.dumps({"type": "response.create", "response": response}),
        event_id=None,
        scope=scope,
        conversation=response["conversation"],
        input_kind="absent",
        output_modalities="text",
        tools_count=1,
        metadata=None,
        model="gpt-realtime",
        tool_choice=tool_choice,
        form_sent=form,
        form_effective="auto" if form == "absent" else form,
        forced_name="return_response" if form == "function" else ("docs" if form == "mcp" else None),
        outcome=outcome,
    )
    if outcome == "failed":
        values["error_type"] = "server_error"
    if outcome == "rejected":
        values.update(error_type="invalid_request_error", error_code="missing_required_parameter")
    if values["form_effective"] in ("required", "function", "mcp") and outcome not in ("rejected", "unfinished"):
        values["forced_call"] = outcome == "completed"
    values.update(fields)
    return Request(**values)


def many(n: int, form: str, outcome: str, scope: str = "out-of-band", **fields: Any) -> list[Request]:
    return [make_request(form, outcome, scope, **fields) for _ in range(n)]
