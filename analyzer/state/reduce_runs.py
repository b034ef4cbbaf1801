"""The reducer's runs (analyzer/state/rows.py): a channel of consecutive rows applied at once, doing exactly
what its rows do one by one through their handlers in analyzer/state/reduce_items.py (tests/analyzer/
test_perf_equivalence.py holds the two equal at every seq).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtreplay.analyzer.state.reduce_items import first_output_at
from rtreplay.analyzer.state.session import Item, Part, SessionState

# -- runs (analyzer/load.py): a channel's rows at once -----------------------------------------------------
# A run handler is (target, apply). `target(state, channel)` is what every row of the channel would write to
# through its handler's plain path (no anomaly, no part created), None when some row would not take that
# path; `apply(state, channel, target)` then does what those rows do one by one.
RunHandler = tuple[Callable[[SessionState, Any], Any], Callable[[SessionState, Any, Any], None]]


def _input_run(state: SessionState, ch: Any, _: Any) -> None:
    state.input_audio.extend(ch.audio)
    state.input_written += sum(len(v) for v in ch.audio)


def _audio_target(state: SessionState, ch: Any) -> Part | None:
    item = state.find_item(ch.item_id)
    for part in reversed(item.content) if item is not None else ():
        if part.fields.get("type") == "output_audio":
            return part  # where `_part_for` puts an audio delta
    return None


def _audio_run(state: SessionState, ch: Any, part: Part) -> None:
    first_output_at(state, ch.response_id, ch.mono_ns)
    part.audio.extend(ch.audio)


def _part_target(state: SessionState, ch: Any) -> Part | None:
    item = state.find_item(ch.item_id)
    return item.content[ch.index] if item is not None and ch.index < len(item.content) else None


def _text_run(field: str) -> Callable[[SessionState, Any, Part], None]:
    def apply(state: SessionState, ch: Any, part: Part) -> None:
        first_output_at(state, ch.response_id, ch.mono_ns)
        part.fields[field] = (part.fields.get(field) or "") + ch.text
    return apply


def _arguments_run(state: SessionState, ch: Any, item: Item) -> None:
    first_output_at(state, ch.response_id, ch.mono_ns)
    item.fields["arguments"] = (item.fields.get("arguments") or "") + ch.text


INPUT_RUN: RunHandler = (lambda state, ch: state, _input_run)
AUDIO_RUN: RunHandler = (_audio_target, _audio_run)
TEXT_RUN: RunHandler = (_part_target, _text_run("text"))
TRANSCRIPT_RUN: RunHandler = (_part_target, _text_run("transcript"))
ARGUMENTS_RUN: RunHandler = (lambda state, ch: state.find_item(ch.item_id), _arguments_run)
