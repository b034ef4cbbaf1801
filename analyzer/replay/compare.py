"""Holding a replay against the recording: named matchers over two answers to the same request.

Each matcher reduces an `Answer` (outcome and `response.done` output) to one comparable value; a replay
matches the recording on a matcher when both reduce to the same value. Ids, timestamps and usage never
enter a value, so two answers that differ only in those match on everything.

| matcher | the value compared |
|---|---|
| `outcome` | completed / failed / cancelled / incomplete / rejected / unfinished |
| `output_types` | the output items' types, in order (`message`, `function_call`, …) |
| `function` | the names of the functions called, in order |
| `arguments` | the function calls as (name, arguments parsed as JSON), in order |
| `text` | the text of the output messages (text, or the transcript of audio), whitespace collapsed |
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from rtreplay.analyzer.replay.send import Answer


def _items(answer: Answer) -> list[dict[str, Any]]:
    return [o for o in answer.output if isinstance(o, dict)]


def function_calls(answer: Answer) -> list[dict[str, Any]]:
    """The answer's `function_call` output items, in order."""
    return [o for o in _items(answer) if o.get("type") == "function_call"]


def _arguments(call: dict[str, Any]) -> Any:
    text = call.get("arguments")
    try:
        return orjson.loads(text) if isinstance(text, str) else text
    except orjson.JSONDecodeError:
        return text  # compared as written


def text_of(answer: Answer) -> str:
    """What the answer said: its messages' text parts and audio transcripts, whitespace collapsed."""
    pieces = []
    for item in _items(answer):
        for part in item.get("content") or []:
            if isinstance(part, dict):
                value = part.get("text") if isinstance(part.get("text"), str) else part.get("transcript")
                if isinstance(value, str):
                    pieces.append(value)
    return " ".join(" ".join(pieces).split())


MATCHERS: dict[str, Callable[[Answer], Any]] = {
    "outcome": lambda a: a.outcome,
    "output_types": lambda a: [o.get("type") for o in _items(a)],
    "function": lambda a: [c.get("name") for c in function_calls(a)],
    "arguments": lambda a: [[c.get("name"), _arguments(c)] for c in function_calls(a)],
    "text": text_of,
}


class MatcherError(ValueError):
    """An unknown matcher name."""


def check_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in MATCHERS]
    if unknown or not names:
        raise MatcherError(f"unknown matcher {', '.join(unknown) or '(none given)'}: use {', '.join(MATCHERS)}")
    return names


def compare(replayed: Answer, recorded: Answer, names: list[str]) -> dict[str, tuple[bool, Any, Any]]:
    """Per matcher: (same, the replay's value, the recording's value)."""
    out = {}
    for name in names:
        mine, theirs = MATCHERS[name](replayed), MATCHERS[name](recorded)
        out[name] = (mine == theirs, mine, theirs)
    return out


def shown(value: Any, width: int = 60) -> str:
    """A value as one short line for a report."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[:width - 1] + "…"
