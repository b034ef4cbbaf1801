"""Two sessions side by side, event by event: a recording and its replay, or two recordings.

Pure apart from `load_side`: events are collapsed (a run of deltas or audio appends of one item becomes one
row, its text joined and its audio counted), normalised (ids become `<item#1>`, `<resp#1>`, … in order of
first appearance in each session, `event_id`s and timestamps are dropped), aligned on (direction, type)
with difflib, and rows of the same kind compared on their normalised payloads. A replay (its `proxy.open`
tagged `replay`) diffed against the session it replays is cut to the replayed request: from the
`response.create` to what concluded it, on both sides — the replay's context set-up has no counterpart.
The answers themselves are compared with the named matchers of `compare`.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rtreplay.analyzer.replay.compare import MATCHERS, compare, shown
from rtreplay.analyzer.replay.send import Answer
from rtreplay.analyzer.state import load, match
from rtreplay.analyzer.state.session import Event
from rtreplay.recorder.schema import PROXY_OPEN
from rtreplay.recorder.store import Archive

ID_KEYS = frozenset({"id", "event_id", "item_id", "response_id", "call_id", "previous_item_id", "conversation_id"})
# Always different from one run to the next: timestamps, and the random padding GA deltas carry.
TIME_KEYS = frozenset({"created_at", "expires_at", "obfuscation"})
ID_TEXT = re.compile(r"^(event|item|resp|call|sess|conv|fc|msg|rs|mcp)_[A-Za-z0-9]{6,}$")
SHOW_PATHS = 3  # differing fields shown per row


class DiffError(ValueError):
    """A side that names no session, or a session that is not there."""


@dataclass(frozen=True)
class Row:
    """One event, or a run of deltas/appends of one item collapsed into one."""

    seq: int  # first seq
    last_seq: int
    direction: str
    type: str
    count: int  # wire events in the row
    body: Any  # normalised payload (for a run: the first event's, with the joined text under "delta")
    audio_bytes: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.direction, self.type

    def label(self) -> str:
        arrow = {"client": "→", "server": "←"}.get(self.direction, "·")
        more = f" ×{self.count}" if self.count > 1 else ""
        return f"{arrow} {self.type}{more}"


@dataclass(frozen=True)
class Pair:
    status: str  # "=" same, "~" same kind with different payloads, "<" only in A, ">" only in B
    a: Row | None
    b: Row | None
    differences: tuple[str, ...] = ()  # "path: A value → B value"


@dataclass
class Side:
    """One session to compare (and, for a replay, what it replays)."""

    label: str  # ARCHIVE:SESSION as given
    session_id: str
    events: list[Event]
    replay_of: dict[str, Any] | None = None  # the `replay` tag of its proxy.open
    window: tuple[int, int] | None = None  # first and last seq compared, when cut to one request
    keep: set[int] | None = None  # the seqs compared, when cut to one request
    answer: Answer | None = None  # the compared request's answer, when cut to one request


@dataclass
class Diff:
    a: Side
    b: Side
    pairs: list[Pair]
    answers: dict[str, tuple[bool, Any, Any]] = field(default_factory=dict)  # matcher -> (same, A, B)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(p.status == s for p in self.pairs) for s in "=~<>"}

    @property
    def same(self) -> bool:
        return all(p.status == "=" for p in self.pairs)


# --- reading the two sides ------------------------------------------------------------------------------

def parse_side(text: str) -> tuple[Archive, str | None]:
    """`ARCHIVE` or `ARCHIVE:SESSION` → (the archive, listed once; the session or None)."""
    if Path(text).exists():
        return Archive.open(text), None
    archive, sep, session = text.rpartition(":")
    if sep and archive and Path(archive).exists():
        return Archive.open(archive), session
    raise DiffError(f"{text}: no such archive (give ARCHIVE or ARCHIVE:SESSION)")


def session_ids(archive: Archive) -> list[str]:
    return sorted(load.events(archive).select("session_id").unique().collect().to_series().to_list())


def load_side(archive: Archive, session_id: str) -> Side:
    events = load.session_events(load.read_session(archive, session_id), coalesce=False)
    tag = None
    for e in events:
        if e.type == PROXY_OPEN:
            value = _parse(e.payload).get("replay")
            tag = value if isinstance(value, dict) else None
            break
    return Side(f"{archive.location}:{session_id}", session_id, events, tag)


def resolve(a_text: str, b_text: str) -> tuple[Side, Side]:
    """The two sessions: each side names its session, or names an archive whose session is the one the
    other side replays (or its only session)."""
    (a_arc, a_sid), (b_arc, b_sid) = parse_side(a_text), parse_side(b_text)
    sides: list[Side | None] = [None, None]
    for i, (arc, sid) in enumerate(((a_arc, a_sid), (b_arc, b_sid))):
        if sid is not None:
            sides[i] = load_side(arc, sid)
    for i, (arc, sid) in enumerate(((a_arc, a_sid), (b_arc, b_sid))):
        if sides[i] is not None:
            continue
        other = sides[1 - i]
        found = session_ids(arc)
        if other is not None and other.replay_of and other.replay_of.get("of_session") in found:
            sides[i] = load_side(arc, other.replay_of["of_session"])
        elif len(found) == 1:
            sides[i] = load_side(arc, found[0])
        else:
            raise DiffError(f"{arc.location} holds {len(found)} sessions: name one as {arc.location}:SESSION "
                            f"(list them with `rtreplay sessions {arc.location}`)")
    return sides[0], sides[1]  # type: ignore[return-value]


# --- cutting a recording and its replay to the replayed request -----------------------------------------

def cut_to_request(a: Side, b: Side) -> None:
    """When one side replays the other, keep only the replayed request and its answer on both sides."""
    for replay, original in ((b, a), (a, b)):
        tag = replay.replay_of
        if tag and tag.get("of_session") == original.session_id and isinstance(tag.get("of_seq"), int):
            _cut(original, tag["of_seq"])
            creates = [e.seq for e in replay.events if e.direction == "client" and e.type == "response.create"]
            if creates:
                _cut(replay, creates[-1])
            return


def _cut(side: Side, request_seq: int) -> None:
    """Keep the request and the events of its answer: events of its response (by `response_id`), its
    output items' `conversation.item.*` events, and an `error` naming it. Whatever else happened meanwhile
    (a replay's context being acknowledged, an in-band response of a live session) is left out."""
    found = [r for r in match.match_events(side.events, side.session_id) if r.seq == request_seq]
    if not found:
        return
    r = found[0]
    end = max(s for s in (r.done_seq, r.answer_seq, r.seq) if s is not None)
    done = next((e for e in side.events if e.seq == r.done_seq), None)
    output = _parse(done.payload).get("response", {}).get("output") if done is not None else None
    output = output if isinstance(output, list) else []
    items = {o.get("id") for o in output if isinstance(o, dict)}
    keep = set()
    for e in side.events:
        if not r.seq <= e.seq <= end:
            continue
        if (e.seq in (r.seq, r.answer_seq) or (r.response_id is not None and e.response_id == r.response_id)
                or (e.type.startswith("conversation.item.") and e.item_id in items)):
            keep.add(e.seq)
    side.window, side.keep = (r.seq, end), keep
    side.answer = Answer(r.outcome, r.response_id, r.error_type, r.error_code, r.reason, output)


# --- rows, normalised -----------------------------------------------------------------------------------

def rows(events: Sequence[Event], keep: set[int] | None = None) -> list[Row]:
    """The events as rows: deltas and appends of one item collapsed, payloads normalised."""
    ids: dict[str, str] = {}
    out: list[Row] = []
    for e in events:
        if keep is not None and e.seq not in keep:
            continue
        data = _parse(e.payload)
        audio = len(e.audio) if e.audio is not None else 0
        last = out[-1] if out else None
        if (last is not None and _collapses(e.type) and last.key == (e.direction, e.type)
                and last.body.get("item_id") == _normal(data.get("item_id"), ids, "item_id")):
            body = dict(last.body)
            if isinstance(data.get("delta"), str) and isinstance(body.get("delta"), str):
                body["delta"] = body["delta"] + data["delta"]
            out[-1] = Row(last.seq, e.seq, e.direction, e.type, last.count + 1, body, last.audio_bytes + audio)
            continue
        out.append(Row(e.seq, e.seq, e.direction, e.type, 1, _normal(data, ids), audio))
    return out


def _collapses(kind: str) -> bool:
    return kind.endswith(".delta") or kind == "input_audio_buffer.append"


def _normal(value: Any, ids: dict[str, str], key: str = "") -> Any:
    """Ids → ordinal placeholders (consistent within one session); event ids, timestamps and obfuscation
    padding dropped."""
    if isinstance(value, dict):  # dropped, not masked: a key one side lacks is no difference either
        return {k: _normal(v, ids, k) for k, v in value.items() if k != "event_id" and k not in TIME_KEYS}
    if isinstance(value, list):
        return [_normal(v, ids, key) for v in value]
    if isinstance(value, str) and (key in ID_KEYS or ID_TEXT.match(value)) and value not in ("root", "none", "auto"):
        if value not in ids:
            prefix = value.split("_", 1)[0] if "_" in value else "id"
            n = sum(1 for v in ids.values() if v.startswith(f"<{prefix}#")) + 1
            ids[value] = f"<{prefix}#{n}>"
        return ids[value]
    return value


def _parse(payload: str) -> dict[str, Any]:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {"<not JSON>": payload[:200]}
    return value if isinstance(value, dict) else {"<value>": value}


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Where two normalised payloads differ: "path: A → B", deepest first differing fields."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{k}" if path else k
            if k not in b:
                yield f"{where}: {shown(a[k], 30)} → (absent)"
            elif k not in a:
                yield f"{where}: (absent) → {shown(b[k], 30)}"
            else:
                yield from differences(a[k], b[k], where)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif isinstance(a, list) and isinstance(b, list):
        yield f"{path}: {len(a)} items → {len(b)} items"
    elif a != b:
        yield f"{path}: {shown(a, 30)} → {shown(b, 30)}"


# --- the diff -------------------------------------------------------------------------------------------

def diff(a: Side, b: Side, whole: bool = False) -> Diff:
    """Align and compare the two sessions (cut to the replayed request unless `whole`)."""
    if not whole:
        cut_to_request(a, b)
    ra, rb = rows(a.events, a.keep), rows(b.events, b.keep)
    pairs: list[Pair] = []
    matcher = difflib.SequenceMatcher(None, [r.key for r in ra], [r.key for r in rb], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for x, y in zip(ra[i1:i2], rb[j1:j2]):
                found = list(differences(x.body, y.body))
                if x.audio_bytes != y.audio_bytes:
                    found.append(f"audio: {x.audio_bytes} bytes → {y.audio_bytes} bytes")
                if x.count != y.count:
                    found.append(f"events: ×{x.count} → ×{y.count}")
                pairs.append(Pair("~" if found else "=", x, y, tuple(found)))
        else:
            pairs.extend(Pair("<", x, None) for x in ra[i1:i2])
            pairs.extend(Pair(">", None, y) for y in rb[j1:j2])
    answers = compare(a.answer, b.answer, list(MATCHERS)) if a.answer and b.answer else {}
    return Diff(a, b, pairs, answers)


# --- output ---------------------------------------------------------------------------------------------

def render(d: Diff, *, all_rows: bool = False, width: int = 44) -> str:
    """A one-screen summary of what differs, then the two sessions side by side."""
    c = d.counts
    out = [f"A  {_describe(d.a)}", f"B  {_describe(d.b)}",
           f"{c['='] + c['~'] + c['<']} rows vs {c['='] + c['~'] + c['>']} (runs of deltas collapsed; ids and "
           f"timestamps normalised): {c['=']} identical, {c['~']} differ, {c['<']} only in A, {c['>']} only in B"]
    if d.answers:
        same = [n for n, (s, _, _) in d.answers.items() if s]
        out.append(f"answer: same {', '.join(same) or 'nothing'}" + "".join(
            f"; {n} {shown(x, 40)} vs {shown(y, 40)}" for n, (s, x, y) in d.answers.items() if not s))
    changed = [p for p in d.pairs if p.status != "="]
    if changed:
        out.append("differing events:")
        for p in changed[:12]:
            row = p.a or p.b
            assert row is not None
            what = {"<": "only in A", ">": "only in B"}.get(p.status) or "; ".join(p.differences[:SHOW_PATHS]) + (
                f"; +{len(p.differences) - SHOW_PATHS} more" if len(p.differences) > SHOW_PATHS else "")
            out.append(f"  {row.type} (A {p.a.seq if p.a else '-'} / B {p.b.seq if p.b else '-'}): {what}")
        if len(changed) > 12:
            out.append(f"  … {len(changed) - 12} more below")
    else:
        out.append("no differences")
    out.append("")
    out.append(f"   {'A seq':>6}  {'A event':<{width}} {'B seq':>6}  B event")
    hidden = 0
    for i, p in enumerate(d.pairs):
        near = any(q.status != "=" for q in d.pairs[max(0, i - 1):i + 2])
        if p.status == "=" and not all_rows and not near:
            hidden += 1
            continue
        if hidden:
            out.append(f"   … {hidden} identical")
            hidden = 0
        a = (f"{p.a.seq:>6}  {_cell(p.a.label(), width)}" if p.a else f"{'':>6}  {'':<{width}}")
        b = f"{p.b.seq:>6}  {p.b.label()}" if p.b else ""
        out.append(f" {p.status} {a} {b}".rstrip())
    if hidden:
        out.append(f"   … {hidden} identical")
    return "\n".join(out) + "\n"


def _cell(text: str, width: int) -> str:
    return (text if len(text) <= width else text[:width - 1] + "…").ljust(width)


def _describe(side: Side) -> str:
    text = side.label
    if side.replay_of:
        t = side.replay_of
        text += f" (replay of {t.get('of_session')}:{t.get('of_seq')}, variant {t.get('variant')}, repeat {t.get('repeat')})"
    if side.window:
        text += f", seq {side.window[0]}–{side.window[1]}"
        if side.answer:
            text += f": {side.answer.outcome}"
    return text


def as_json(d: Diff) -> dict[str, Any]:
    def row(r: Row | None) -> dict[str, Any] | None:
        return None if r is None else {"seq": r.seq, "last_seq": r.last_seq, "direction": r.direction,
                                       "type": r.type, "events": r.count}
    return {"a": _describe(d.a), "b": _describe(d.b), "counts": d.counts,
            "answers": {n: {"same": s, "a": x, "b": y} for n, (s, x, y) in d.answers.items()},
            "rows": [{"status": p.status, "a": row(p.a), "b": row(p.b), "differences": list(p.differences)}
                     for p in d.pairs]}
