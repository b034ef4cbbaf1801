"""The failures report: one taxonomy for everything that went wrong, whether or not it said "failed"
(docs/definitions.md, "Failures").

Kinds (detail in brackets):
  response_failed [error code]       response.done status failed (or an unknown status)
  response_incomplete [reason]       response.done status incomplete (max_output_tokens, content_filter, …)
  response_without_done              response.created with no response.done in the session
  error [code] by cause              an `error` event; cause = the client event type it names by event_id,
                                     `response.create` for an ordered rejection, else unknown
  session_expired                    an `error` with code session_expired
  transcription_failed [code]        conversation.item.input_audio_transcription.failed
  hung_tool_call [function name]     a default-conversation function call whose output the app never sent
  output_without_response [call id]  a function_call_output after which no response was created
  barge_in_not_truncated             a barge-in whose cut item was never truncated
  invalid_truncate [item id]         a truncate beyond the audio generated (or of an item without audio)
  upstream_close [close code]        the upstream closed with a code other than 1000
  upstream_drop                      the upstream went away without a close frame
  upstream_rejected [HTTP status]    the upstream refused the WebSocket handshake
  proxy_stopped                      the proxy was stopped mid-session (it said 1001 going away to both sides)
  proxy_error                        the proxy recorded an error
Counted per session and per hour (or day, past three days of data).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rtreplay.analyzer.report.voice_values import Failure, SessionFacts, utc
from rtreplay.analyzer.report.voice_render import Table, short

KINDS = ("response_failed", "response_incomplete", "response_without_done", "error", "session_expired",
         "transcription_failed", "hung_tool_call", "output_without_response", "barge_in_not_truncated",
         "invalid_truncate", "upstream_close", "upstream_drop", "upstream_rejected", "proxy_stopped", "proxy_error")
# Details that name one thing (an item, a call) are not grouped by: the kind says enough.
UNGROUPED = frozenset({"invalid_truncate", "output_without_response", "barge_in_not_truncated"})
MAX_BUCKETS = 1000


@dataclass(frozen=True)
class KindCount:
    kind: str
    detail: str | None
    cause: str | None
    count: int
    sessions: int


@dataclass(frozen=True)
class FailuresReport:
    kinds: tuple[KindCount, ...]
    sessions: tuple[tuple[str, dict[str, int]], ...]  # session -> kind -> count (sessions with none: {})
    time_unit: str
    over_time: tuple[tuple[int, dict[str, int]], ...]  # (bucket start, epoch seconds) -> kind -> count
    events: tuple[tuple[str, Failure], ...]
    source: str | None = None
    problems: tuple[str, ...] = ()
    headline: str = ""

    def to_json(self) -> dict[str, Any]:
        import datetime as dt
        return {
            "report": "rtreplay.failures", "version": 1, "source": self.source, "headline": self.headline,
            "total": sum(k.count for k in self.kinds),
            "kinds": [{"kind": k.kind, "detail": k.detail, "cause": k.cause, "count": k.count,
                       "sessions": k.sessions} for k in self.kinds],
            "sessions": [{"session_id": sid, "total": sum(c.values()), "kinds": c} for sid, c in self.sessions],
            "over_time": {"unit": self.time_unit, "buckets": [
                {"start": dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(), "kinds": c}
                for t, c in self.over_time]},
            "events": [{"session_id": sid, "seq": e.seq, "ts": utc(e.ts_us).isoformat(), "kind": e.kind,
                        "detail": e.detail, "cause": e.cause} for sid, e in self.events],
            "problems": list(self.problems),
        }

    def tables(self) -> list[Table]:
        kinds = tuple((k.kind, k.detail, k.cause, k.count, k.sessions) for k in self.kinds)
        shown = tuple((k, short(d, 16), short(c, 16), n, s) for k, d, c, n, s in kinds)  # 80 columns; CSV: whole
        top = sorted(self.sessions, key=lambda s: (-sum(s[1].values()), s[0]))[:20]
        present = [k for k in KINDS if any(k in c for _, c in top)]
        abbrev = {k: "".join(w[0] for w in k.split("_")) for k in present}
        sess = tuple((short(sid, 16), sum(c.values()), *(c.get(k, 0) for k in present)) for sid, c in top)
        legend = "; ".join(f"{a} = {k}" for k, a in abbrev.items())
        return [
            Table("Failures by kind", ("kind", "detail", "cause", "count", "sessions"), shown, raw=kinds),
            Table("Failures by session (most first)", ("session", "all", *abbrev.values()), sess, legend),
        ]


def _headline(kinds: Sequence[KindCount], sessions: int, affected: int) -> str:
    total = sum(k.count for k in kinds)
    if total == 0:
        return f"No failures in {sessions} sessions."
    by_kind = Counter()
    for k in kinds:
        by_kind[k.kind] += k.count
    silent = sum(n for k, n in by_kind.items() if k not in ("response_failed", "error"))
    top = ", ".join(f"{k} {n}" for k, n in by_kind.most_common(4))
    return (f"{total} failures in {affected} of {sessions} sessions; {silent} of them never said \"failed\" "
            f"(most: {top}).")


class Fold:
    """The report folded session by session: counts by kind, a count row per session; every failure is kept
    (the JSON lists each)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str | None, str | None]] = Counter()
        self.where: dict[tuple[str, str | None, str | None], set[str]] = {}
        self.sessions: list[tuple[str, dict[str, int]]] = []
        self.events: list[tuple[str, Failure]] = []

    def add(self, f: SessionFacts) -> None:
        c: Counter[str] = Counter()
        for e in f.failures:
            key = (e.kind, None if e.kind in UNGROUPED else e.detail, e.cause)
            self.counts[key] += 1
            self.where.setdefault(key, set()).add(f.session_id)
            c[e.kind] += 1
            self.events.append((f.session_id, e))
        self.sessions.append((f.session_id, {k: c[k] for k in KINDS if c.get(k)}))

    def report(self, source: str | None = None, problems: Sequence[str] = ()) -> FailuresReport:
        order = {k: i for i, k in enumerate(KINDS)}
        kinds = tuple(KindCount(k, d, c, n, len(self.where[(k, d, c)]))
                      for (k, d, c), n in sorted(self.counts.items(), key=lambda kv: (
                          order.get(kv[0][0], 99), -kv[1], kv[0][1] or "", kv[0][2] or "")))
        self.events.sort(key=lambda x: (x[0], x[1].seq, x[1].kind))
        unit, buckets = _over_time([e for _, e in self.events])
        self.sessions.sort()
        return FailuresReport(kinds, tuple(self.sessions), unit, buckets, tuple(self.events), source,
                              tuple(problems), _headline(kinds, len(self.sessions),
                                                         sum(1 for _, c in self.sessions if c)))


def build(facts: Iterable[SessionFacts], source: str | None = None, problems: Sequence[str] = ()) -> FailuresReport:
    fold = Fold()
    for f in facts:
        fold.add(f)
    return fold.report(source, problems)


def _over_time(events: Sequence[Failure]) -> tuple[str, tuple[tuple[int, dict[str, int]], ...]]:
    if not events:
        return "hour", ()
    stamps = [e.ts_us / 1e6 for e in events]
    unit = "hour" if max(stamps) - min(stamps) <= 3 * 86400 else "day"
    step = 3600 if unit == "hour" else 86400
    counts = Counter((int(t // step), e.kind) for t, e in zip(stamps, events))
    slots = {k for k, _ in counts}
    if max(slots) - min(slots) < MAX_BUCKETS:
        slots = set(range(min(slots), max(slots) + 1))
    return unit, tuple((k * step, {kind: counts[(k, kind)] for kind in KINDS if counts.get((k, kind))})
                       for k in sorted(slots))


def timeline_marks(f: SessionFacts) -> dict[int, list[str]]:
    """What `rtreplay show` marks on a session's timeline, by seq: barge-ins (with what the app did), invalid
    truncations, hung tool calls and every other failure of the taxonomy."""
    marks: dict[int, list[str]] = {}
    for b in f.barge_ins:
        what = ("NEVER TRUNCATED" if b.truncate_seq is None else
                f"the server truncated at {b.audio_end_ms} ms (seq {b.truncate_seq})" if b.truncated_by == "server" else
                f"truncated at {b.audio_end_ms} ms (seq {b.truncate_seq})" if b.valid else
                f"INVALID truncate at {b.audio_end_ms} ms (seq {b.truncate_seq})")
        cut = (f"after {b.generated_ms:,.0f} ms of audio" if b.generated_ms is not None else
               "while its audio played" + (f" (cleared at seq {b.cleared_seq})" if b.cleared_seq is not None else ""))
        marks.setdefault(b.seq, []).append(f"BARGE-IN: cut {b.response_id} {cut}; {what}")
    generated = {t.seq: t.generated_ms for t in f.truncations}
    for e in f.failures:
        if e.kind == "barge_in_not_truncated":
            continue  # said on the barge-in's own line
        if e.kind == "invalid_truncate":
            gen = generated.get(e.seq)
            text = "INVALID TRUNCATE: " + ("the item has no audio" if gen is None else
                                          f"audio_end_ms beyond the {gen:,.0f} ms generated")
        elif e.kind == "hung_tool_call":
            text = f"HUNG TURN: {e.detail or 'this call'} never got its function_call_output"
        elif e.kind == "proxy_stopped":
            text = "PROXY STOPPED: the proxy closed both sides with 1001 going away (not an upstream failure)"
        else:
            text = f"FAILURE {e.kind}" + (f" {e.detail}" if e.detail else "") + (f" (caused by {e.cause})" if e.cause else "")
        marks.setdefault(e.seq, []).append(text)
    return marks
