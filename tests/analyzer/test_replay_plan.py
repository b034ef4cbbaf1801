"""The pure replay planner: variants, the events it plans, the fidelity notes, and SDK validity."""
from __future__ import annotations

import base64
import typing
from pathlib import Path

import orjson
import pydantic
import pytest
from openai.types.realtime import RealtimeClientEvent
from openai.types.realtime.realtime_session_create_request_param import RealtimeSessionCreateRequestParam

from rtreplay.analyzer.state import load, match
from rtreplay.analyzer.replay.plan import (RECORDED, PlanError, Variant, apply_variant, parse_set, parse_vary, plan_replay,
                                  variants)
from rtreplay.analyzer.state.session import Item, Part, SessionState
from rtreplay.analyzer.state.timeline import states_before

GOLDEN_ARCHIVE = Path(__file__).parents[1] / "data" / "replay_plans" / "archive"
SESSION = {"type": "realtime", "object": "realtime.session", "id": "sess_1", "model": "gpt-realtime-mini",
           "expires_at": 1700003600, "instructions": "be brief", "tools": [], "tool_choice": "auto",
           "output_modalities": ["audio"], "client_secret": {"value": "ek_fake_test"}}
REQUEST = {"type": "response.create", "event_id": "app_7",
           "response": {"conversation": "none", "tool_choice": {"type": "function", "name": "return_response"},
                        "input": [{"type": "item_reference", "id": "item_u1"}], "metadata": {"k": "v"}}}


def message(iid: str, role: str, *parts: Part, status: str = "completed") -> Item:
    return Item(iid, {"type": "message", "role": role, "status": status, "object": "realtime.item"}, list(parts))


def state(*items: Item, session: dict | None = None) -> SessionState:
    s = SessionState(session_id="s", session=dict(SESSION if session is None else session))
    for it in items:
        s.items[it.id] = it
        s.order.append(it.id)
    return s


def kinds(plan) -> list[str]:
    return [n.kind for n in plan.notes]


# --- variants -------------------------------------------------------------------------------------------

def test_vary_and_set_make_one_variant_each_after_recorded_without_repeats() -> None:
    vs = variants(["tool_choice=recorded,required,function:lookup", "conversation=auto"],
                  ['response.metadata.run={"n":1}', 'response.tool_choice="required"'])
    assert [v.name for v in vs] == ["recorded", "tool_choice=required", "tool_choice=function:lookup",
                                    "conversation=auto", 'set response.metadata.run={"n":1}',
                                    'set response.tool_choice="required"']
    assert vs[2].changes == ((("tool_choice",), {"type": "function", "name": "lookup"}),)
    assert variants(["tool_choice=recorded"]) == [RECORDED]


@pytest.mark.parametrize("spec", ["tool_choice", "tool_choice=", "tool_choice=maybe", "tool_choice=function:",
                                  "conversation=sometimes", "voice=alloy"])
def test_bad_vary_is_a_plan_error(spec: str) -> None:
    with pytest.raises(PlanError, match="--vary"):
        parse_vary(spec)


@pytest.mark.parametrize("spec", ["tool_choice=1", "response.tool_choice", "response.tool_choice=auto", "response.=1"])
def test_bad_set_is_a_plan_error(spec: str) -> None:
    with pytest.raises(PlanError, match="--set"):
        parse_set(spec)


def test_apply_variant_sets_nested_fields_on_a_copy() -> None:
    recorded = {"metadata": {"a": 1}, "tool_choice": "auto"}
    changed = apply_variant(recorded, parse_set('response.metadata.b=[1,2]'))
    assert changed == {"metadata": {"a": 1, "b": [1, 2]}, "tool_choice": "auto"}
    assert recorded == {"metadata": {"a": 1}, "tool_choice": "auto"}


# --- the plan -------------------------------------------------------------------------------------------

def test_plan_recreates_config_then_items_in_order_then_the_request() -> None:
    audio = bytes(range(256)) * 4
    s = state(
        message("item_u1", "user", Part({"type": "input_text", "text": "hello"})),
        message("item_a1", "assistant", Part({"type": "output_text", "text": "hi there"})),
        Item("item_f1", {"type": "function_call", "status": "completed", "call_id": "call_1", "name": "f",
                         "arguments": "{}"}),
        Item("item_o1", {"type": "function_call_output", "call_id": "call_1", "output": "42"}),
        message("item_u2", "user", Part({"type": "input_audio", "transcript": None}, [audio[:100], audio[100:]])),
    )
    plan = plan_replay(s, REQUEST, parse_vary("tool_choice=required")[0])
    assert plan.model == "gpt-realtime-mini"
    assert [e["type"] for e in plan.events] == ["session.update"] + ["conversation.item.create"] * 5 + ["response.create"]
    assert [e["event_id"] for e in plan.events] == [f"rtreplay_{i}" for i in range(7)]
    config = plan.events[0]["session"]
    assert config == {"type": "realtime", "instructions": "be brief", "tools": [], "tool_choice": "auto",
                      "output_modalities": ["audio"]}
    creates = plan.events[1:-1]
    assert [c["item"]["id"] for c in creates] == s.order == list(plan.item_ids)
    assert [c["previous_item_id"] for c in creates] == ["root", *s.order[:-1]]
    assert creates[0]["item"] == {"id": "item_u1", "type": "message", "role": "user",
                                  "content": [{"type": "input_text", "text": "hello"}]}
    assert creates[2]["item"] == {"id": "item_f1", "type": "function_call", "call_id": "call_1", "name": "f",
                                  "arguments": "{}"}
    assert creates[4]["item"]["content"] == [{"type": "input_audio", "audio": base64.b64encode(audio).decode()}]
    assert plan.events[-1]["response"] == {**REQUEST["response"], "tool_choice": "required"}
    assert plan.request_event_id == "rtreplay_6"
    assert plan.notes == ()
    assert plan == plan_replay(s, REQUEST, parse_vary("tool_choice=required")[0])  # deterministic


def test_audio_that_cannot_be_recreated_is_sent_as_text_and_noted() -> None:
    s = state(
        message("item_u1", "user", Part({"type": "input_audio", "transcript": "what is my balance"})),
        message("item_a1", "assistant", Part({"type": "output_audio", "transcript": "it is 4 dollars"}, [b"\x01\x02"]),
                status="incomplete"),
        message("item_u2", "user", Part({"type": "input_audio", "transcript": None}, [b""])),
    )
    plan = plan_replay(s, {"type": "response.create"})
    items = [e["item"] for e in plan.events if e["type"] == "conversation.item.create"]
    assert items[0]["content"] == [{"type": "input_text", "text": "what is my balance"}]
    assert items[1]["content"] == [{"type": "output_text", "text": "it is 4 dollars"}]
    assert items[2]["content"] == []
    assert [(n.kind, n.item_id) for n in plan.notes] == [
        ("user_audio_as_text", "item_u1"), ("item_was_incomplete", "item_a1"), ("assistant_audio_as_text", "item_a1"),
        ("user_audio_missing", "item_u2")]
    assert plan.events[-1] == {"type": "response.create", "event_id": "rtreplay_4"}


def test_what_the_state_lacks_is_noted() -> None:
    s = state(session={})
    s.input_audio.append(b"\x00" * 480)
    plan = plan_replay(s, REQUEST, model=None)
    assert plan.model == "gpt-realtime"
    assert [e["type"] for e in plan.events] == ["response.create"]
    assert kinds(plan) == ["model_unknown", "session_config_unknown", "input_buffer_not_replayed",
                           "unresolved_reference"]
    assert plan_replay(s, REQUEST, model="gpt-realtime-2").model == "gpt-realtime-2"


def test_a_response_that_is_not_an_object_cannot_be_planned() -> None:
    with pytest.raises(PlanError):
        plan_replay(state(), {"type": "response.create", "response": "auto"})


def test_variant_on_a_request_without_parameters_creates_them() -> None:
    plan = plan_replay(state(), {"type": "response.create"}, Variant("x", ((("conversation",), "none"),)))
    assert plan.events[-1]["response"] == {"conversation": "none"}


# --- validity against the official SDK ------------------------------------------------------------------

def _extras(value: object, where: str = "") -> list[str]:
    """Fields the SDK models did not declare (pydantic keeps them in model_extra), anywhere in the tree."""
    if isinstance(value, pydantic.BaseModel):
        found = [f"{where}.{k}" for k in (value.model_extra or {})]
        return found + [x for k in type(value).model_fields for x in _extras(getattr(value, k), f"{where}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _extras(v, f"{where}[{i}]")]
    return []


def test_planned_events_of_recorded_sessions_are_valid_ga_client_events() -> None:
    adapter = pydantic.TypeAdapter(RealtimeClientEvent)
    settable = set(typing.get_type_hints(RealtimeSessionCreateRequestParam)) - {"model"}
    checked = 0
    for request in match.requests(GOLDEN_ARCHIVE):
        events = load.session_events(load.read_session(GOLDEN_ARCHIVE, request.session_id))
        before = states_before(events, [request.seq], request.session_id)[request.seq]
        for variant in variants(["tool_choice=recorded,required,auto,none,function:return_response",
                                 "conversation=auto,none"]):
            plan = plan_replay(before, orjson.loads(request.payload), variant)
            assert set(plan.events[0]["session"]) <= settable
            for event in plan.events:
                sent = event.get("response", {})
                if match.tool_choice_form("tool_choice" in sent, sent.get("tool_choice")) == "invalid":
                    continue  # the nested Chat Completions tool_choice was invalid as recorded: replayed as is
                parsed = adapter.validate_python(event)
                assert _extras(parsed) == [], (event["type"], _extras(parsed))
                checked += 1
    assert checked > 100
