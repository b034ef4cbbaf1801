"""Planning a replay: the client events that recreate a recorded request's context and send it again.

Pure: `plan_replay(state, request, variant)` reads the rebuilt state just before the request, the recorded
`response.create` event and one variant, and returns a `Plan` — the exact client events to send on a fresh
session, in order, plus fidelity notes (what could not be reproduced exactly). No I/O, no clock, no
randomness: the same inputs give the same plan, byte for byte (golden `--dry-run` plans rely on it).

The plan (docs/replay.md explains each choice):
1. `session.update` with the recorded effective config minus the fields a client cannot set
   (`READ_ONLY_SESSION_FIELDS`; the model goes into the URL).
2. One `conversation.item.create` per item of the default conversation, in order, ids kept (so
   `item_reference`s in a recorded `input` still resolve). Each names the item before it as
   `previous_item_id` (`"root"` for the first), so order does not depend on the server's append rule.
   Server-only item fields (`object`, `status`) are left out. User audio is sent as recorded where its bytes
   were kept, else its transcript as text (noted); assistant audio becomes text of its transcript (the API
   cannot create assistant audio; noted).
3. The recorded `response.create`, with the variant's change applied.
Every planned event carries a deterministic `event_id` (`rtreplay_<n>`), so an `error` names its cause.
"""
from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from rtreplay.analyzer.state.session import Item, Part, SessionState

# Fields of a session object that `session.update` refuses or that a client must not resend: ids and
# expiry are server-set, `model` cannot change (it goes in the URL), `client_secret` is a credential.
READ_ONLY_SESSION_FIELDS = frozenset({"id", "object", "expires_at", "model", "client_secret"})
# Item fields the server sets; a client's `status` "has no effect" (realtime-protocol.md §3.1).
SERVER_ITEM_FIELDS = frozenset({"object", "status"})
DEFAULT_MODEL = "gpt-realtime"
EVENT_ID_PREFIX = "rtreplay_"
TOOL_CHOICES = ("recorded", "auto", "none", "required")  # plus function:NAME


class PlanError(ValueError):
    """A variant or request that cannot be planned (bad --vary/--set text, unreadable request)."""


@dataclass(frozen=True)
class Variant:
    """One way of sending the request: as recorded (`changes` empty), or with response fields changed.

    `changes` are (path inside `response`, JSON value) pairs, e.g. (("tool_choice",), "required").
    """

    name: str
    changes: tuple[tuple[tuple[str, ...], Any], ...] = ()


RECORDED = Variant("recorded")


@dataclass(frozen=True)
class Note:
    """Something the replay could not reproduce exactly. `kind` is a stable tag (docs/replay.md)."""

    kind: str
    message: str
    item_id: str | None = None


@dataclass(frozen=True)
class Plan:
    """The client events of one replay session, in order, and how faithful they are."""

    model: str
    events: tuple[dict[str, Any], ...]
    notes: tuple[Note, ...] = ()
    item_ids: tuple[str, ...] = ()  # the recreated conversation, in order

    @property
    def request_event_id(self) -> str:
        """The `event_id` of the final `response.create` (an `error` carrying it is a rejection)."""
        return str(self.events[-1]["event_id"])

    def lines(self) -> list[str]:
        """The events as the sender puts them on the wire: one compact JSON text each."""
        return [orjson.dumps(e).decode() for e in self.events]

    def slim(self) -> Plan:
        """The plan without its conversation items (which hold the context's audio): what a report needs
        after the replay was sent — the session config, the request and the notes."""
        kept = tuple(e for e in self.events if e["type"] != "conversation.item.create")
        return Plan(self.model, kept, self.notes, self.item_ids)

    def setting(self, name: str) -> tuple[bool, Any]:
        """(present, value) of a response setting as the request gets it: from the `response.create`, else
        from the planned `session.update`."""
        response = self.events[-1].get("response") or {}
        if name in response:
            return True, response[name]
        session = next((e["session"] for e in self.events if e["type"] == "session.update"), {})
        return name in session, session.get(name)


# --- variants -------------------------------------------------------------------------------------------

def parse_vary(spec: str) -> list[Variant]:
    """`tool_choice=recorded,required,auto,none,function:NAME` or `conversation=auto,none` → variants."""
    key, sep, values = spec.partition("=")
    key = key.strip().removeprefix("response.")
    if not sep or not values.strip():
        raise PlanError(f"--vary {spec!r}: expected FIELD=V1,V2 (e.g. tool_choice=recorded,required,auto)")
    out = []
    for raw in (v.strip() for v in values.split(",")):
        if raw == "recorded":
            out.append(RECORDED)
        elif key == "tool_choice" and raw.startswith("function:") and raw[len("function:"):]:
            out.append(Variant(f"tool_choice={raw}", ((("tool_choice",), {"type": "function", "name": raw[9:]}),)))
        elif key == "tool_choice" and raw in TOOL_CHOICES:
            out.append(Variant(f"tool_choice={raw}", ((("tool_choice",), raw),)))
        elif key == "conversation" and raw in ("auto", "none"):
            out.append(Variant(f"conversation={raw}", ((("conversation",), raw),)))
        else:
            raise PlanError(f"--vary {key}={raw!r}: not supported; use tool_choice=recorded|auto|none|required|"
                            "function:NAME, conversation=auto|none, or --set response.FIELD=JSON")
    return out


def parse_set(spec: str) -> Variant:
    """`response.FIELD[.SUB]=JSON` → a variant that sets that field to the JSON value."""
    path, sep, value = spec.partition("=")
    keys = tuple(path.strip().split("."))
    if not sep or keys[0] != "response" or len(keys) < 2 or not all(keys):
        raise PlanError(f"--set {spec!r}: expected response.FIELD=JSON (e.g. response.tool_choice='\"auto\"')")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PlanError(f"--set {spec!r}: the value is not JSON ({exc}); quote strings: '\"auto\"'") from None
    return Variant(f"set {'.'.join(keys)}={value.strip()}", ((keys[1:], parsed),))


def variants(vary: Sequence[str] = (), sets: Sequence[str] = ()) -> list[Variant]:
    """The variants to send: `recorded` first, then each --vary value and each --set, without repeats."""
    out = [RECORDED]
    for v in [*(x for spec in vary for x in parse_vary(spec)), *(parse_set(s) for s in sets)]:
        if v not in out:
            out.append(v)
    return out


def apply_variant(response: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """A copy of the recorded `response` parameters with the variant's changes made."""
    out = copy.deepcopy(response)
    for path, value in variant.changes:
        target = out
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = copy.deepcopy(value)
    return out


# --- the plan -------------------------------------------------------------------------------------------

def plan_replay(state: SessionState, request: dict[str, Any], variant: Variant = RECORDED,
                model: str | None = None) -> Plan:
    """The client events that replay `request` (a recorded `response.create` event) in `state`'s context.

    `state` is the rebuilt state just before the request; `model` is used when the state shows none.
    """
    notes: list[Note] = []
    events: list[dict[str, Any]] = []
    chosen_model = state.session.get("model") if isinstance(state.session.get("model"), str) else model
    if not chosen_model:
        chosen_model = DEFAULT_MODEL
        notes.append(Note("model_unknown", f"no model recorded; replaying with {DEFAULT_MODEL}"))
    config = _session_config(state.session, notes)
    if config is not None:
        events.append({"type": "session.update", "session": config})
    previous = "root"
    for item in state.conversation():
        events.append({"type": "conversation.item.create", "previous_item_id": previous,
                       "item": _item(item, notes)})
        previous = item.id
    if state.input_audio:
        notes.append(Note("input_buffer_not_replayed", f"{sum(len(c) for c in state.input_audio)} bytes of "
                          "uncommitted input audio were in the buffer; a response does not read them"))
    if state.anomalies:
        notes.append(Note("rebuild_anomalies", f"{len(state.anomalies)} anomalies while rebuilding the state "
                          f"(first: {state.anomalies[0].kind} at seq {state.anomalies[0].seq})"))
    response = request.get("response")
    if response is not None and not isinstance(response, dict):
        raise PlanError("the recorded response.create has a `response` that is not an object")
    create: dict[str, Any] = {"type": "response.create"}
    if response is not None or variant.changes:
        create["response"] = apply_variant(response or {}, variant)
    _check_references(create.get("response", {}), state, notes)
    events.append(create)
    numbered = tuple({"type": e["type"], "event_id": f"{EVENT_ID_PREFIX}{n}", **e} for n, e in enumerate(events))
    return Plan(chosen_model, numbered, tuple(notes), tuple(state.order))


def _session_config(session: dict[str, Any], notes: list[Note]) -> dict[str, Any] | None:
    if not session:
        notes.append(Note("session_config_unknown", "no session.created/updated before the request; the "
                          "replay runs with the target's defaults"))
        return None
    config = {k: copy.deepcopy(v) for k, v in session.items() if k not in READ_ONLY_SESSION_FIELDS}
    if "type" not in config:
        config = {"type": "realtime", **config}
        notes.append(Note("session_not_ga", "the recorded session config has no `type` (beta shape); sent "
                          "with type realtime, beta-only fields may be refused"))
    return config


def _item(item: Item, notes: list[Note]) -> dict[str, Any]:
    """The item as a client creates it: recorded fields minus server-set ones, content made creatable."""
    out: dict[str, Any] = {"id": item.id}
    out.update((k, copy.deepcopy(v)) for k, v in item.fields.items() if k not in SERVER_ITEM_FIELDS)
    if item.fields.get("status") == "incomplete":
        notes.append(Note("item_was_incomplete", "the recorded item was cut short (status incomplete); it is "
                          "recreated with what it held", item.id))
    if item.fields.get("type") == "message":
        role = item.fields.get("role")
        out["content"] = [p for p in (_part(part, role, item.id, notes) for part in item.content) if p is not None]
    return out


def _part(part: Part, role: Any, item_id: str, notes: list[Note]) -> dict[str, Any] | None:
    fields = {k: copy.deepcopy(v) for k, v in part.fields.items() if k != "audio"}
    kind = fields.get("type")
    if kind == "input_audio":
        audio = part.audio_bytes()
        if audio:
            fields["audio"] = base64.b64encode(audio).decode("ascii")
            if fields.get("transcript") is None:
                fields.pop("transcript", None)
            return fields
        transcript = fields.get("transcript")
        if isinstance(transcript, str) and transcript:
            notes.append(Note("user_audio_as_text", "user audio was not kept; its transcript is sent as text",
                              item_id))
            return {"type": "input_text", "text": transcript}
        notes.append(Note("user_audio_missing", "user audio was not kept and has no transcript; the part is "
                          "left out", item_id))
        return None
    if kind == "output_audio":
        transcript = fields.get("transcript")
        text = transcript if isinstance(transcript, str) else ""
        notes.append(Note("assistant_audio_as_text", "the API cannot create assistant audio; its transcript is "
                          "sent as output_text" + ("" if text else " (the transcript was empty)"), item_id))
        return {"type": "output_text", "text": text}
    return fields


def _check_references(response: dict[str, Any], state: SessionState, notes: list[Note]) -> None:
    items = response.get("input")
    if not isinstance(items, list):
        return
    for ref in items:
        if (isinstance(ref, dict) and ref.get("type") == "item_reference"
                and (not isinstance(ref.get("id"), str) or ref["id"] not in state.items)):
            notes.append(Note("unresolved_reference", f"input references {ref.get('id')!r}, which was not in "
                              "the default conversation when the request was sent", ref.get("id")))
