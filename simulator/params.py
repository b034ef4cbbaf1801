"""Client-supplied parameters: session defaults, `session.update` merging, and validation of tool_choice,
response parameters and items. Every refusal is a `ClientError` whose `param` names the offending path
("session.tool_choice.name", "response.tool_choice.name", "item.call_id", …).

Choices where the protocol doc is silent (§10): unknown keys are refused with `unknown_parameter` (the real
API does this for beta fields such as `modalities`); a `model` change through `session.update` is refused;
`previous_item_id: null` means append; a duplicate client item id is refused with `invalid_value`.
"""
from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from rtreplay.simulator.errors import ClientError, invalid, invalid_type, missing, unknown_parameter

DEFAULT_INSTRUCTIONS = ("You are a helpful, witty, and friendly AI running in the rtreplay simulator. "
                        "Your answers are deterministic and describe the context you were given.")
PCM = {"type": "audio/pcm", "rate": 24000}
SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200,
              "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}
SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}

_SESSION_KEYS = {
    "realtime": {"type", "model", "output_modalities", "instructions", "tools", "tool_choice", "max_output_tokens",
                 "tracing", "truncation", "prompt", "audio", "include", "reasoning", "parallel_tool_calls"},
    "transcription": {"type", "audio", "include"},
}
_AUDIO_KEYS = {"input": {"format", "transcription", "noise_reduction", "turn_detection"},
               "output": {"format", "voice", "speed"}}
_RESPONSE_KEYS = {"conversation", "input", "instructions", "tools", "tool_choice", "output_modalities", "audio",
                  "max_output_tokens", "metadata", "prompt", "reasoning", "parallel_tool_calls"}
_CONTENT_TYPES = {"user": {"input_text", "input_audio", "input_image"}, "system": {"input_text"},
                  "assistant": {"output_text"}}  # assistant audio cannot be created by clients (§3.2)
ITEM_TYPES = {"message", "function_call", "function_call_output", "mcp_approval_response", "mcp_list_tools",
              "mcp_call", "mcp_approval_request"}


def _one_of(value: Any, options: Any) -> bool:
    """Membership that tolerates unhashable JSON values (lists, objects) from clients."""
    return isinstance(value, str) and value in options


def default_session(kind: str, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The config `session.created` shows (§9.1 defaults)."""
    audio_input = {"format": dict(PCM), "transcription": None, "noise_reduction": None,
                   "turn_detection": dict(SERVER_VAD)}
    if kind == "transcription":
        audio_input["transcription"] = {"model": "gpt-4o-transcribe", "language": None, "prompt": ""}
        return {"type": "transcription", "object": "realtime.transcription_session", "id": session_id,
                "expires_at": expires_at, "audio": {"input": audio_input}, "include": None}
    return {"type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
            "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS, "tools": [],
            "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None, "truncation": "auto",
            "prompt": None, "expires_at": expires_at,
            "audio": {"input": audio_input, "output": {"format": dict(PCM), "voice": "alloy", "speed": 1.0}},
            "include": None}


def updated_session(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """`current` with the fields present in `update` changed (nested `audio` merged field by field)."""
    if update is None:
        raise missing("session")
    if not isinstance(update, dict):
        raise invalid_type("session", "an object")
    if "type" not in update:
        raise missing("session.type")
    if not _one_of(update["type"], _SESSION_KEYS):
        raise invalid("session.type", update["type"], "Supported values are: 'realtime' and 'transcription'.")
    if update["type"] != current["type"]:
        raise invalid("session.type", update["type"], f"This session's type is '{current['type']}'.")
    for key in update:
        if key not in _SESSION_KEYS[current["type"]]:
            raise unknown_parameter(f"session.{key}")
    if "model" in update and update["model"] != current.get("model"):
        raise invalid("session.model", update["model"], "The model of a session cannot be changed.")
    new = copy.deepcopy(current)
    for key, value in update.items():
        if key == "audio":
            _merge_audio(new["audio"], value)
        else:
            new[key] = _checked_session_field(key, value)
    return new


def _checked_session_field(key: str, value: Any) -> Any:
    param = f"session.{key}"
    if key == "output_modalities":
        check_modalities(value, param)
    elif key == "instructions" and not isinstance(value, str):
        raise invalid_type(param, "a string")
    elif key == "tools":
        check_tools(value, param)
    elif key == "tool_choice":
        check_tool_choice(value, param)
    elif key == "max_output_tokens":
        check_max_output_tokens(value, param)
    return copy.deepcopy(value)


def _merge_audio(audio: dict[str, Any], update: Any) -> None:
    if not isinstance(update, dict):
        raise invalid_type("session.audio", "an object")
    for direction, fields in update.items():
        if direction not in audio:
            raise unknown_parameter(f"session.audio.{direction}")
        if not isinstance(fields, dict):
            raise invalid_type(f"session.audio.{direction}", "an object")
        for key, value in fields.items():
            param = f"session.audio.{direction}.{key}"
            if key not in _AUDIO_KEYS[direction]:
                raise unknown_parameter(param)
            if key == "format":
                value = check_format(value, param)
            elif key == "turn_detection" and value is not None:
                value = _turn_detection(value, param)
            audio[direction][key] = copy.deepcopy(value)


def _turn_detection(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object or null")
    kind = value.get("type")
    defaults = {"server_vad": SERVER_VAD, "semantic_vad": SEMANTIC_VAD}.get(kind) if isinstance(kind, str) else None
    if defaults is None:
        raise invalid(f"{param}.type", value.get("type"), "Supported values are: 'server_vad' and 'semantic_vad'.")
    return {**defaults, **value}


def check_format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in ("audio/pcm", "audio/pcmu", "audio/pcma"):
        raise invalid(param, value, "Supported types are 'audio/pcm', 'audio/pcmu' and 'audio/pcma'.")
    if value["type"] == "audio/pcm":
        if value.get("rate", 24000) != 24000:
            raise invalid(f"{param}.rate", value.get("rate"), "Only 24000 is supported.")
        return dict(PCM)
    return {"type": value["type"]}


def check_modalities(value: Any, param: str) -> None:
    if value not in (["text"], ["audio"]):
        raise invalid(param, value, "Supported values are: ['text'] and ['audio'].")


def check_max_output_tokens(value: Any, param: str) -> None:
    if value == "inf":
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_type(param, "an integer or 'inf'")
    if value < 1:
        raise ClientError(f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                          code="integer_below_min_value", param=param)
    if value > 4096:
        raise ClientError(f"Invalid '{param}': integer above maximum value. Expected a value <= 4096, but got {value} instead.",
                          code="integer_above_max_value", param=param)


def check_tools(value: Any, param: str) -> None:
    if not isinstance(value, list):
        raise invalid_type(param, "an array")
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise invalid_type(where, "an object")
        kind = tool.get("type", "function")
        if kind == "function" and not isinstance(tool.get("name"), str):
            raise missing(f"{where}.name")
        if kind == "mcp" and not isinstance(tool.get("server_label"), str):
            raise missing(f"{where}.server_label")
        if kind not in ("function", "mcp"):
            raise invalid(f"{where}.type", kind, "Supported values are: 'function' and 'mcp'.")


def check_tool_choice(value: Any, param: str) -> None:
    """The three strings, {type:"function", name} or {type:"mcp", server_label, name?} (§5.2)."""
    if value in ("auto", "none", "required"):
        return
    if not isinstance(value, dict):
        raise invalid(param, value, "Supported values are: 'none', 'auto', 'required', or a tool choice object.")
    if value.get("type") == "function":
        if not isinstance(value.get("name"), str):
            raise missing(f"{param}.name")  # also the Chat Completions nested form {function:{name}}
    elif value.get("type") == "mcp":
        if not isinstance(value.get("server_label"), str):
            raise missing(f"{param}.server_label")
    else:
        raise invalid(f"{param}.type", value.get("type"), "Supported values are: 'function' and 'mcp'.")


def check_response(params: Any, session_tools: list[dict]) -> dict[str, Any]:
    """Validate `response.create`'s `response` object (items are checked separately)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid_type("response", "an object")
    for key in params:
        if key not in _RESPONSE_KEYS:
            raise unknown_parameter(f"response.{key}")
    if params.get("conversation", "auto") not in ("auto", "none"):
        raise invalid("response.conversation", params["conversation"], "Supported values are: 'auto' and 'none'.")
    if "input" in params and not isinstance(params["input"], list):
        raise invalid_type("response.input", "an array")
    if "instructions" in params and not isinstance(params["instructions"], str):
        raise invalid_type("response.instructions", "a string")
    if "tools" in params:
        check_tools(params["tools"], "response.tools")
    if "tool_choice" in params:
        check_tool_choice(params["tool_choice"], "response.tool_choice")
        choice = params["tool_choice"]
        tools = params.get("tools", session_tools)
        if isinstance(choice, dict) and choice["type"] == "function" and \
                not any(t.get("name") == choice["name"] for t in tools if t.get("type", "function") == "function"):
            raise ClientError(f"Tool choice 'function' with name '{choice['name']}' not found in 'tools'.",
                              code="invalid_value", param="response.tool_choice.name")
    if "output_modalities" in params:
        check_modalities(params["output_modalities"], "response.output_modalities")
    if "max_output_tokens" in params:
        check_max_output_tokens(params["max_output_tokens"], "response.max_output_tokens")
    if "audio" in params:
        output = params["audio"].get("output", {}) if isinstance(params["audio"], dict) else None
        if not isinstance(output, dict):
            raise invalid_type("response.audio.output", "an object")
        if "format" in output:
            check_format(output["format"], "response.audio.output.format")
    if "metadata" in params:
        _check_metadata(params["metadata"])
    return params


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise invalid("response.metadata", metadata, "Expected an object with at most 16 string pairs.")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise invalid(f"response.metadata.{key}", value, "Keys are at most 64 and values at most 512 characters.")


def checked_item(item: Any, param: str) -> dict[str, Any]:
    """A client item made ready to store: validated, with decoded audio under `_audio` and `_ms`."""
    if item is None:
        raise missing(param)
    if not isinstance(item, dict):
        raise invalid_type(param, "an object")
    if "type" not in item:
        raise missing(f"{param}.type")
    if not _one_of(item["type"], ITEM_TYPES):
        raise invalid(f"{param}.type", item["type"], f"Supported values are: {', '.join(sorted(ITEM_TYPES))}.")
    if "id" in item and not isinstance(item["id"], str):
        raise invalid_type(f"{param}.id", "a string")
    stored = copy.deepcopy(item)
    stored.pop("object", None)
    stored["status"] = "completed"  # a client's status "has no effect" (§3.1)
    if item["type"] == "message":
        _check_message(stored, param)
    elif item["type"] == "function_call":
        for key in ("name", "arguments"):
            if not isinstance(item.get(key), str):
                raise missing(f"{param}.{key}")
    elif item["type"] == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise missing(f"{param}.{key}")
    return stored


def _check_message(item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if role is None:
        raise missing(f"{param}.role")
    if not _one_of(role, _CONTENT_TYPES):
        raise invalid(f"{param}.role", role, "Supported values are: 'user', 'assistant' and 'system'.")
    content = item.get("content")
    if not isinstance(content, list):
        raise missing(f"{param}.content")
    for i, part in enumerate(content):
        where = f"{param}.content[{i}]"
        if not isinstance(part, dict) or not _one_of(part.get("type"), _CONTENT_TYPES[role]):
            kind = part.get("type") if isinstance(part, dict) else part
            raise invalid(f"{where}.type", kind, f"Supported values for role '{role}' are: "
                          f"{', '.join(sorted(_CONTENT_TYPES[role]))}.")
        if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise missing(f"{where}.text")
        if part["type"] == "input_audio":
            try:
                audio = base64.b64decode(part.get("audio") or "", validate=True)
            except (binascii.Error, TypeError):
                raise invalid(f"{where}.audio", "<audio>", "Expected base64-encoded audio.") from None
            part.pop("audio", None)
            part["_audio"], part["_ms"] = audio, len(audio) // 48
            part.setdefault("transcript", None)
