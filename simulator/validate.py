"""Checks the simulator's traffic against the official `openai` SDK's GA Realtime event types (tests only).

On when the environment has RTREPLAY_SIM_VALIDATE=1 (tests/conftest.py sets it for the whole test session);
off otherwise — it is slow, and `openai` is only a test dependency, so it is imported lazily.
- Every server event sent must validate against its model in `openai.types.realtime.RealtimeServerEvent`.
- Every client event the simulator *accepted* (answered without an `error` event) must validate against
  `RealtimeClientEvent` — so the simulator is never more lenient than the GA schema. One exception, as the
  protocol doc says (§3.5): `item_reference` entries of `response.input` are checked against
  `ResponseItemReference` instead, because the GA item union omits them although the server accepts them.
- Fields real GA traffic carries that the SDK types (3.57) do not model (protocol §11.4) are a named allowance,
  `REAL_TRAFFIC_FIELDS`: taken out of a server event before it is checked, so the check stays as strict as
  the SDK for everything else (the simulator sends `phase` like the real server does).
Violations are appended to `VIOLATIONS` and, when RTREPLAY_SIM_VIOLATIONS names a file, written to it as
one JSON line each (so simulators in subprocesses report too).
"""
from __future__ import annotations

import functools
import json
import os
import typing
from typing import Any

VIOLATIONS: list[str] = []


def enabled() -> bool:
    return os.environ.get("RTREPLAY_SIM_VALIDATE") == "1"


@functools.cache
def _models(union_name: str) -> dict[str, Any]:
    from openai.types import realtime  # lazily: a test-only dependency

    union = typing.get_args(getattr(realtime, union_name))[0]
    return {typing.get_args(model.model_fields["type"].annotation)[0]: model for model in typing.get_args(union)}


# protocol §11.4: where real traffic has them -> the field names
REAL_TRAFFIC_FIELDS: dict[str, tuple[str, ...]] = {
    "event": ("obfuscation",),  # delta events
    "item": ("phase",),  # assistant messages of the gpt-realtime-2 family: commentary | final_answer
    "usage.output_token_details": ("reasoning_tokens",),
}


def _without_real_traffic_fields(event: dict[str, Any]) -> dict[str, Any]:
    def item(value: Any) -> Any:
        return {k: v for k, v in value.items() if k not in REAL_TRAFFIC_FIELDS["item"]} \
            if isinstance(value, dict) else value

    out = {k: v for k, v in event.items() if k not in REAL_TRAFFIC_FIELDS["event"]}
    if "item" in out:
        out["item"] = item(out["item"])
    response = out.get("response")
    if isinstance(response, dict):
        response = dict(response)
        if isinstance(response.get("output"), list):
            response["output"] = [item(o) for o in response["output"]]
        usage = response.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("output_token_details"), dict):
            details = {k: v for k, v in usage["output_token_details"].items()
                       if k not in REAL_TRAFFIC_FIELDS["usage.output_token_details"]}
            response["usage"] = {**usage, "output_token_details": details}
        out["response"] = response
    return out


def check_server_event(event: dict[str, Any]) -> None:
    _check("server", "RealtimeServerEvent", _without_real_traffic_fields(event))


def check_client_event(event: dict[str, Any]) -> None:
    if event.get("type") == "response.create" and isinstance(event.get("response"), dict) \
            and isinstance(event["response"].get("input"), list):
        from openai.types.realtime import ResponseItemReference

        references = [i for i in event["response"]["input"] if isinstance(i, dict) and i.get("type") == "item_reference"]
        for reference in references:
            _validate("client", ResponseItemReference, reference, event)
        event = {**event, "response": {**event["response"],
                                       "input": [i for i in event["response"]["input"] if i not in references]}}
    _check("client", "RealtimeClientEvent", event)


def _check(side: str, union_name: str, event: dict[str, Any]) -> None:
    model = _models(union_name).get(event.get("type"))
    if model is None:
        _report(side, event, f"type {event.get('type')!r} is not in the SDK's {union_name}")
    else:
        _validate(side, model, event, event)


def _validate(side: str, model: Any, value: dict[str, Any], event: dict[str, Any]) -> None:
    from pydantic import ValidationError

    try:
        model.model_validate(value)
    except ValidationError as exc:
        _report(side, event, str(exc))


def _report(side: str, event: dict[str, Any], problem: str) -> None:
    message = f"{side} event {event.get('type')!r} (event_id {event.get('event_id')!r}) fails the openai SDK: {problem}"
    VIOLATIONS.append(message)
    path = os.environ.get("RTREPLAY_SIM_VIOLATIONS")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(message) + "\n")
