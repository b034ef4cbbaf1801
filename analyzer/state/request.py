"""Records the analyzer hands to reports, SQL comparisons and replay. Definitions: docs/definitions.md."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["out-of-band", "default"]
Form = Literal["absent", "auto", "none", "required", "function", "mcp", "invalid"]
Outcome = Literal["completed", "failed", "cancelled", "incomplete", "rejected", "unfinished"]
Pairing = Literal["error_event_id", "error_order", "metadata", "done_metadata", "conversation", "order"]
Confidence = Literal["high", "low"]
PAIRINGS: tuple[str, ...] = ("metadata", "conversation", "done_metadata", "order", "error_event_id", "error_order")

FORMS: tuple[str, ...] = ("absent", "auto", "none", "required", "function", "mcp", "invalid")
FORCED_FORMS: frozenset[str] = frozenset({"required", "function", "mcp"})
OUTCOMES: tuple[str, ...] = ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished")


@dataclass(frozen=True)
class Request:
    """One client `response.create` and what the server did with it."""

    session_id: str
    seq: int  # seq of the client response.create
    ts: dt.datetime
    payload: str  # the request's JSON text as archived
    event_id: str | None
    scope: Scope
    conversation: str
    input_kind: Literal["absent", "empty", "items"]
    output_modalities: str | None
    tools_count: int | None
    metadata: dict[str, Any] | None
    model: str | None
    tool_choice: Any  # the JSON value sent; None when absent (see form_sent to tell null from absent)
    form_sent: Form
    form_effective: Form
    forced_name: str | None  # the function name (or mcp server_label) a forced form names
    outcome: Outcome
    response_id: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    reason: str | None = None
    forced_call: bool | None = None
    pairing: Pairing | None = None  # how the answer was found (docs/definitions.md, "Matching")
    confidence: Confidence | None = None  # how sure that pairing is
    answer_seq: int | None = None  # seq of the response.created (or done, or error) that answered it
    done_seq: int | None = None  # seq of its response.done
    latency_ms: float | None = None  # request -> response.done (or -> error), monotonic clock

    @property
    def request_id(self) -> str:
        return f"{self.session_id}:{self.seq}"


# The key that tells which request a response answers (docs/definitions.md, "Matching"): the metadata (a
# non-empty object, else None) and whether it is out-of-band. An answer's out-of-band part is None when its
# `response` has no conversation_id key (only the metadata is then compared).
def metadata_key(value: Any) -> dict | None:
    return value if isinstance(value, dict) and value else None


def request_key(params: Any) -> tuple[dict | None, bool]:
    params = params if isinstance(params, dict) else {}
    return metadata_key(params.get("metadata")), params.get("conversation") == "none"


def answer_key(response: dict) -> tuple[dict | None, bool | None]:
    oob = response.get("conversation_id") is None if "conversation_id" in response else None
    return metadata_key(response.get("metadata")), oob


def fits(request: tuple[dict | None, bool], answer: tuple[dict | None, bool | None]) -> bool:
    return request[0] == answer[0] and (answer[1] is None or request[1] == answer[1])


BUSY = "conversation_already_has_active_response"
BUSY_TEXT = "Conversation already has an active response"  # what beta servers sent, with code null


def is_ordered_rejection(err: dict) -> bool:
    """An `error` without event_id that answers a response.create in order (docs/definitions.md, "Matching" 2):
    the active-response error (GA: by its code; beta sent it with code null, known by its message), or one
    whose param is in `response.`."""
    code, message = err.get("code"), err.get("message")
    return err.get("event_id") is None and (
        code == BUSY or (code is None and isinstance(message, str) and message.startswith(BUSY_TEXT))
        or str(err.get("param") or "").startswith("response."))
