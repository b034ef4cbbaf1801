"""The deterministic "model": what a response says or calls, from exactly the context it was given.

Rules (same context + parameters → same output, so a reader can tell which context a response saw):
- `tool_choice` "none" → a text reply. {type:"function", name} → a call of that function. "required" →
  a call of the function tool named in the last user message, else of the first function tool (a reply
  when there are no function tools). "auto" → a call when the last item is a user message naming a
  function tool, else a reply. MCP choices and tools get a reply (MCP servers are not simulated).
- Call arguments fill the tool's JSON schema (`rtreplay.simulator.arguments`) with the summary (when the
  instructions ask for one) or the last user message.
- A reply is a summary of every visible item when the instructions contain "summar"; otherwise it answers
  the last item (a tool output, or what the user said) and names how many items it saw.
User audio is "heard" through its transcript, or `audio.transcribe()` of its bytes when it has none.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rtreplay.simulator import arguments
from rtreplay.simulator.audio import transcribe


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Reply:
    text: str


def respond(context: list[dict], instructions: str, tools: list[dict], tool_choice: Any) -> Call | Reply:
    functions = {t["name"]: t for t in tools if t.get("type", "function") == "function" and t.get("name")}
    last_user = next((item for item in reversed(context) if _role(item) == "user"), None)
    said = text_of(last_user) if last_user else ""
    wants_summary = "summar" in instructions.lower()
    named = [name for name in functions if _names(said, name)]

    choice: str | None  # the function to call, if any
    if isinstance(tool_choice, dict):
        choice = tool_choice["name"] if tool_choice.get("type") == "function" else None
    elif tool_choice == "required" and functions:
        choice = named[0] if named else next(iter(functions))
    elif tool_choice == "auto" and named and context and context[-1] is last_user:
        choice = named[0]
    else:
        choice = None
    if choice in functions:
        basis = summary(context) if wants_summary else said
        value = arguments.fill(functions[choice].get("parameters") or {"type": "object"}, basis)
        return Call(choice, json.dumps(value, ensure_ascii=False))
    return Reply(summary(context) if wants_summary else _answer(context, said))


def summary(context: list[dict]) -> str:
    lines = [f"{_role(item)}: {_clip(text_of(item))}" for item in context]
    return f"Summary of {len(context)} items: " + ("; ".join(lines) if lines else "nothing yet") + "."


def _answer(context: list[dict], said: str) -> str:
    seen = f"({len(context)} items in context)"
    if not context:
        return f"Hello, how can I help? {seen}"
    last = context[-1]
    if last.get("type") == "function_call_output":
        call = next((i for i in context if i.get("type") == "function_call" and i.get("call_id") == last.get("call_id")), None)
        name = call["name"] if call else "tool"
        return f"The {name} tool returned {_clip(last.get('output', ''))} {seen}"
    if said:
        return f"You said: {_clip(said)} {seen}"
    return f"Continuing the conversation. {seen}"


def text_of(item: dict) -> str:
    """What the model reads from an item."""
    kind = item.get("type")
    if kind == "function_call":
        return f"{item.get('name')}({item.get('arguments', '')})"
    if kind == "function_call_output":
        return str(item.get("output", ""))
    if kind != "message":
        return f"[{kind}]"
    pieces = []
    for part in item.get("content", []):
        if part.get("text") is not None:
            pieces.append(part["text"])
        elif part.get("transcript"):
            pieces.append(part["transcript"])
        elif "_audio" in part:
            pieces.append(transcribe(part["_audio"], part.get("_ms", 0)))
        elif part.get("type") == "input_image":
            pieces.append("[image]")
    return " ".join(pieces)


def _role(item: dict) -> str:
    return item.get("role") or item.get("type", "item")


def _names(text: str, tool_name: str) -> bool:
    spoken = re.escape(tool_name).replace("_", "[ _]")
    return re.search(rf"\b{spoken}\b", text, re.IGNORECASE) is not None


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
