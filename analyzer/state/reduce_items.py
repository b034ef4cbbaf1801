"""Handlers for the conversation's items and their content: inserts after `previous_item_id`, merges,
deletes, truncation, content parts and the text/audio/argument deltas (with `.done` authoritative), and
input transcription. The rules of analyzer/reduce.py apply: each handler changes only the state passed in,
raises `Malformed` for a field of the wrong shape, and records anything else surprising as an anomaly.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from rtreplay.analyzer.state.session import Anomaly, Event, Item, Part, SessionState, part_type

class Malformed(Exception):
    """A field had the wrong shape; becomes an anomaly of kind `malformed`."""


Handler = Callable[[SessionState, Event], None]


def anomaly(state: SessionState, ev: Event, kind: str, message: str) -> None:
    state.anomalies.append(Anomaly(ev.seq, ev.type, kind, message))


def as_dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    return value


def as_index(value: Any, what: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 10_000:
        raise Malformed(f"{what} is not a small non-negative integer")
    return value


def audio_of(ev: Event, key: str) -> Any:
    """The event's audio: the archive's decoded bytes, else the base64 still inline in the payload."""
    if ev.audio is not None:
        return ev.audio
    raw = ev.data.get(key)
    if raw is None:
        return b""
    try:
        return base64.b64decode(as_str(raw, key), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{key} is not base64") from exc


# -- items and the conversation -------------------------------------------------------------------------
def new_item(raw: dict, seq: int) -> Item:
    iid = as_str(raw.get("id"), "item.id")
    item = Item(iid, {}, [], None, seq)
    merge_item(item, raw)
    return item


def _merge_part(part: Part, raw: dict) -> None:
    for key, value in raw.items():
        if key == "audio":
            if isinstance(value, str):
                try:
                    part.audio = [base64.b64decode(value, validate=True)] if value else []
                    part.audio_known = True
                except (binascii.Error, ValueError) as exc:
                    raise Malformed("content audio is not base64") from exc
        elif key == "type":
            part.fields["type"] = part_type(value)
        elif key in ("text", "transcript") and not value and part.fields.get(key):
            continue  # prefer the text we already have over an empty one (§4.7 step 2)
        else:
            part.fields[key] = value


def merge_item(item: Item, raw: dict) -> None:
    for key, value in raw.items():
        if key in ("id", "object"):
            continue
        if key == "content":
            if not isinstance(value, list):
                raise Malformed("item.content is not a list")
            for i, p in enumerate(value):
                p = as_dict(p, "content part")
                if i == len(item.content):
                    item.content.append(Part({}))
                _merge_part(item.content[i], p)
        elif key == "arguments" and not value and item.fields.get("arguments"):
            continue
        else:
            item.fields[key] = value


def position(order: list[str], iid: str) -> int:
    """Where `iid` is in the conversation, looked for from the end first (where items are usually added)."""
    for i in range(len(order) - 1, max(len(order) - 8, 0) - 1, -1):
        if order[i] == iid:
            return i
    return order.index(iid)


def _place(state: SessionState, ev: Event, iid: str, prev: Any, has_prev: bool, *, moving: bool = False) -> None:
    """Put `iid` right after `prev` (head when null); append when the predecessor is unknown."""
    if moving:
        del state.order[position(state.order, iid)]
    if not has_prev:
        state.order.append(iid)
    elif prev is None or prev == "root":
        state.order.insert(0, iid)
    elif isinstance(prev, str) and prev in state.items and prev != iid:
        state.order.insert(position(state.order, prev) + 1, iid)
    else:
        anomaly(state, ev, "unknown_previous_item", f"previous_item_id {prev!r} is not in the conversation; appended")
        state.order.append(iid)


def _attach_input_audio(state: SessionState, item: Item) -> None:
    """Give a user item the audio that went into it: its commit's buffer, or the client's own bytes."""
    audio = state.committed_audio.pop(item.id, None)
    if audio is None and item.id in state.client_audio:
        audio = [state.client_audio.pop(item.id)]
    if audio:
        for part in item.content:
            if part.fields.get("type") == "input_audio" and not part.audio:
                part.audio = list(audio)
                part.audio_known = True
                break
    for ev in state.pending_transcription.pop(item.id, []):  # transcription that came before the item
        index = as_index(ev.data.get("content_index"), "content_index")
        if index < len(item.content):
            TRANSCRIPTION[ev.type](item.content[index], ev)
        else:
            anomaly(state, ev, "transcription_for_unknown_item", f"{item.id!r} part {index} is not known")


def item_upserted(state: SessionState, ev: Event) -> None:
    """conversation.item.added / .created (beta): the item joins the default conversation after
    previous_item_id (§4.2), or, already there, is merged (and moved when announced elsewhere)."""
    d = ev.data
    raw = as_dict(d.get("item"), "item")
    iid = as_str(raw.get("id"), "item.id")
    existing = state.items.get(iid)
    if existing is not None:
        merge_item(existing, raw)
        if "previous_item_id" in d and _position_differs(state, iid, d["previous_item_id"]):
            anomaly(state, ev, "item_moved", f"{iid} re-announced after {d['previous_item_id']!r}; moved there")
            _place(state, ev, iid, d["previous_item_id"], True, moving=True)
        return
    item = state.outputs.pop(iid, None)
    if item is not None:
        merge_item(item, raw)
        if item.response_id in state.responses and state.responses[item.response_id].out_of_band:
            anomaly(state, ev, "out_of_band_item_in_conversation", f"{iid} of an out-of-band response was added")
    else:
        item = new_item(raw, ev.seq)
    state.items[iid] = item
    _place(state, ev, iid, d.get("previous_item_id"), "previous_item_id" in d)
    _attach_input_audio(state, item)


def item_done(state: SessionState, ev: Event) -> None:
    """conversation.item.done finishes an item; it never adds one, nor moves one. The real server sends it, with
    previous_item_id null, for the outputs of out-of-band responses too (protocol §11.1): an item that was only
    ever a response output stays that output. Its previous_item_id is no position: the server also sends null
    for a function_call it had added after the user's turn (tests/data/real/ga-sip-sideband-barge-ins)."""
    d = ev.data
    raw = as_dict(d.get("item"), "item")
    iid = as_str(raw.get("id"), "item.id")
    if iid in state.items:
        merge_item(state.items[iid], raw)
    elif iid in state.outputs:
        merge_item(state.outputs[iid], raw)
    else:
        anomaly(state, ev, "done_for_unknown_item", f"{iid} was never added nor output; not placed")

def _position_differs(state: SessionState, iid: str, prev: Any) -> bool:
    i = position(state.order, iid)
    if prev is None or prev == "root":
        return i != 0
    if not isinstance(prev, str) or prev not in state.items:
        return False
    return i == 0 or state.order[i - 1] != prev


def merge_known_item(state: SessionState, ev: Event, kind: str, why: str) -> None:
    """Merge the event's `item` into the item of that id; an unknown id is an anomaly `kind`."""
    raw = as_dict(ev.data.get("item"), "item")
    item = state.find_item(raw.get("id"))
    if item is None:
        anomaly(state, ev, kind, f"item {raw.get('id')!r} {why}")
        return
    merge_item(item, raw)


def item_retrieved(state: SessionState, ev: Event) -> None:
    merge_known_item(state, ev, "retrieved_unknown_item", "was never added; not placed")


def item_deleted(state: SessionState, ev: Event) -> None:
    iid = ev.data.get("item_id")
    if not isinstance(iid, str) or iid not in state.items:
        anomaly(state, ev, "delete_unknown_item", f"{iid!r} is not in the conversation")
        return
    del state.items[iid]
    state.order.remove(iid)


def _bytes_per_ms(state: SessionState) -> int:
    audio = state.session.get("audio")
    fmt = audio.get("output", {}).get("format") if isinstance(audio, dict) and isinstance(audio.get("output"), dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else state.session.get("output_audio_format")
    return 8 if kind in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw") else 48


def item_truncated(state: SessionState, ev: Event) -> None:
    """Cut the audio at audio_end_ms and drop the transcript (the server deletes it, §4.5)."""
    d = ev.data
    item = state.find_item(d.get("item_id"))
    index = as_index(d.get("content_index"), "content_index")
    end_ms = d.get("audio_end_ms")
    if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
        raise Malformed("audio_end_ms is not a non-negative integer")
    if item is None or index >= len(item.content):
        anomaly(state, ev, "truncate_unknown_item", f"{d.get('item_id')!r} part {index} is not known")
        return
    part = item.content[index]
    part.audio = [part.audio_bytes()[: end_ms * _bytes_per_ms(state)]]
    part.fields["transcript"] = ""  # deleted, not cut: what `retrieve` then shows


def _part_for(state: SessionState, ev: Event, kind: str) -> Part | None:
    """The content part a content-level event targets; an anomaly when its item or part is unknown."""
    iid = ev.item_id if ev.item_id is not None else ev.data.get("item_id")
    item = state.find_item(iid)
    if item is None:
        anomaly(state, ev, "delta_for_unknown_item", f"item {iid!r} is not known")
        return None
    if ev._data is None and ev.audio is not None:  # fast path for audio deltas: no payload parse
        for part in reversed(item.content):
            if part.fields.get("type") == kind:
                return part
    index = as_index(ev.data.get("content_index"), "content_index")
    while len(item.content) <= index:
        anomaly(state, ev, "delta_for_unknown_part", f"item {iid} has no part {index}; created")
        item.content.append(Part({"type": kind}))
    return item.content[index]


def _first_output(state: SessionState, ev: Event) -> None:
    first_output_at(state, ev.response_id, ev.mono_ns)


def first_output_at(state: SessionState, response_id: str | None, mono_ns: int) -> None:
    r = state.responses.get(response_id) if response_id else None
    if r is not None and r.first_output_mono_ns is None:
        r.first_output_mono_ns = mono_ns


def text_delta(field: str, kind: str) -> Handler:
    def handler(state: SessionState, ev: Event) -> None:
        part = _part_for(state, ev, kind)
        if part is not None:
            _first_output(state, ev)
            part.fields[field] = (part.fields.get(field) or "") + as_str(ev.data.get("delta", ""), "delta")
    return handler


def text_done(field: str, kind: str, key: str) -> Handler:
    def handler(state: SessionState, ev: Event) -> None:
        part = _part_for(state, ev, kind)
        if part is not None and key in ev.data:  # the .done value is authoritative
            part.fields[field] = ev.data[key]
    return handler


def audio_delta(state: SessionState, ev: Event) -> None:
    part = _part_for(state, ev, "output_audio")
    if part is not None:
        _first_output(state, ev)
        part.audio.append(audio_of(ev, "delta"))


def audio_done(state: SessionState, ev: Event) -> None:
    _part_for(state, ev, "output_audio")  # only checks the item exists: `.done` carries no audio


def part_added(state: SessionState, ev: Event) -> None:
    d = ev.data
    item = state.find_item(d.get("item_id"))
    if item is None:
        anomaly(state, ev, "delta_for_unknown_item", f"item {d.get('item_id')!r} is not known")
        return
    index = as_index(d.get("content_index"), "content_index")
    while len(item.content) <= index:
        item.content.append(Part({}))
    part = item.content[index]
    _merge_part(part, as_dict(d.get("part", {}), "part"))
    if part.fields.get("type") == "output_audio":
        part.audio_known = True  # streamed from here on: every byte arrives as a delta


def arguments_handler(done: bool) -> Handler:
    def handler(state: SessionState, ev: Event) -> None:
        d = ev.data
        item = state.find_item(d.get("item_id"))
        if item is None:
            anomaly(state, ev, "delta_for_unknown_item", f"item {d.get('item_id')!r} is not known")
        elif done:
            item.fields["arguments"] = as_str(d.get("arguments"), "arguments")
        else:
            _first_output(state, ev)
            item.fields["arguments"] = (item.fields.get("arguments") or "") + as_str(d.get("delta", ""), "delta")
    return handler


def mcp_call_status(status: str) -> Handler:
    def handler(state: SessionState, ev: Event) -> None:
        item = state.find_item(ev.data.get("item_id"))
        if item is None:
            anomaly(state, ev, "delta_for_unknown_item", f"item {ev.data.get('item_id')!r} is not known")
        else:
            item.fields["status"] = status
    return handler


def _transcription_part(state: SessionState, ev: Event) -> Part | None:
    """The user item's part a transcription event is about. Transcription runs apart from the item (protocol
    §9.3: asynchronous), so an event for an item not yet added is held and applied when it is (None here)."""
    d = ev.data
    iid = as_str(d.get("item_id"), "item_id")
    index = as_index(d.get("content_index"), "content_index")
    item = state.find_item(iid)
    if item is None:
        state.pending_transcription.setdefault(iid, []).append(ev)
        return None
    if index >= len(item.content):
        anomaly(state, ev, "transcription_for_unknown_item", f"{iid!r} part {index} is not known")
        return None
    return item.content[index]


def _delta(part: Part, ev: Event) -> None:
    part.fields["transcript"] = (part.fields.get("transcript") or "") + as_str(ev.data.get("delta") or "", "delta")


def _completed(part: Part, ev: Event) -> None:
    part.fields["transcript"] = ev.data.get("transcript")


def _failed(part: Part, ev: Event) -> None:
    part.fields["transcription_error"] = ev.data.get("error")  # the item keeps no transcript


TRANSCRIPTION: dict[str, Callable[[Part, Event], None]] = {
    "conversation.item.input_audio_transcription.delta": _delta,
    "conversation.item.input_audio_transcription.completed": _completed,
    "conversation.item.input_audio_transcription.failed": _failed,
}


def transcription(state: SessionState, ev: Event) -> None:
    """A transcription delta, completion or failure, on its user item (held until the item is added). A
    failure is in `errors` at once, and shows on its part as `transcription_error`."""
    if ev.type == "conversation.item.input_audio_transcription.failed":
        state.errors.append((ev.seq, ev.type, ev.data.get("error")))
    part = _transcription_part(state, ev)
    if part is not None:
        TRANSCRIPTION[ev.type](part, ev)


def transcription_never_placed(state: SessionState) -> list[Anomaly]:
    """End of the session: transcription still held names an item that was never added."""
    out = [Anomaly(ev.seq, ev.type, "transcription_for_unknown_item", f"{iid!r} was never added")
           for iid, held in state.pending_transcription.items() for ev in held]
    state.pending_transcription.clear()
    return out
