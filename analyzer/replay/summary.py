"""What came of a replay run: `summarize(results)` gives a `ReplayReport` — per variant, outcome counts and
the failure rate with a 95% Wilson interval beside the original outcomes of the same requests, forced tool
calls seen, and the plans' fidelity notes."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rtreplay.analyzer.replay.run import Result
from rtreplay.analyzer.report.tool_choice import wilson
from rtreplay.analyzer.state import match
from rtreplay.analyzer.state.request import OUTCOMES


@dataclass(frozen=True)
class Tally:
    """Outcome counts with the failure rate of docs/definitions.md (failed / (n - unfinished))."""

    outcomes: dict[str, int]

    @classmethod
    def of(cls, outcomes: Sequence[str]) -> Tally:
        counts = Counter(outcomes)
        return cls({o: counts.get(o, 0) for o in OUTCOMES})

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def decided(self) -> int:
        return self.total - self.outcomes["unfinished"]

    @property
    def failure_rate(self) -> float | None:
        return self.outcomes["failed"] / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.outcomes["failed"], self.decided)

    def as_json(self) -> dict[str, Any]:
        return {"n": self.total, "outcomes": self.outcomes, "failure_rate": self.failure_rate,
                "interval": list(self.interval) if self.interval else None}


@dataclass(frozen=True)
class VariantRow:
    variant: str
    replayed: Tally  # every replay of this variant
    original: Tally  # the recorded outcomes of the same requests (each once)
    errors: dict[str, int]  # "failed server_error" / "rejected invalid_value" -> count
    forced: tuple[int, int] | None  # (forced calls seen, decided replays) when the variant forces a tool


@dataclass(frozen=True)
class NoteCount:
    kind: str
    requests: int  # distinct requests whose plan carries this note
    example: str


@dataclass(frozen=True)
class ReplayReport:
    rows: tuple[VariantRow, ...]
    per_request: tuple[dict[str, Any], ...]
    notes: tuple[NoteCount, ...]
    setup_errors: int = 0  # replays whose context could not be fully recreated (an error answered setup)
    details: tuple[str, ...] = field(default_factory=tuple)  # distinct reasons replays were unfinished


def summarize(results: Sequence[Result]) -> ReplayReport:
    """Aggregate results per variant (in first-seen order) and per (request, variant)."""
    by_variant: dict[str, list[Result]] = {}
    by_pair: dict[tuple[str, str], list[Result]] = {}
    for res in results:
        by_variant.setdefault(res.job.variant.name, []).append(res)
        by_pair.setdefault((res.job.request.request_id, res.job.variant.name), []).append(res)
    rows = tuple(_row(name, mine) for name, mine in by_variant.items())
    per_request = tuple(
        {"request_id": rid, "response_id": mine[0].job.request.response_id, "form_sent": mine[0].job.request.form_sent,
         "original": mine[0].job.request.outcome, "variant": name,
         **Tally.of([m.answer.outcome for m in mine]).as_json(),
         "notes": sorted({n.kind for n in mine[0].job.plan.notes}),
         "replay_sessions": [m.session_id for m in mine if m.session_id]}
        for (rid, name), mine in by_pair.items())
    seen: dict[str, tuple[set[str], str]] = {}
    for res in results:
        for note in res.job.plan.notes:
            ids, example = seen.setdefault(note.kind, (set(), note.message))
            ids.add(res.job.request.request_id)
    notes = tuple(NoteCount(k, len(ids), ex) for k, (ids, ex) in seen.items())
    details = tuple(dict.fromkeys(r.answer.detail for r in results
                                  if r.answer.outcome == "unfinished" and r.answer.detail))
    return ReplayReport(rows, per_request, notes, sum(1 for r in results if r.answer.setup_errors), details)


def _row(name: str, mine: Sequence[Result]) -> VariantRow:
    originals = {m.job.request.request_id: m.job.request.outcome for m in mine}
    errors = Counter(f"{m.answer.outcome} {m.answer.error_code or m.answer.error_type or ''}".strip()
                     for m in mine if m.answer.outcome in ("failed", "rejected"))
    forced_calls = [forced(m) for m in mine]
    known = [f for f in forced_calls if f is not None]
    return VariantRow(name, Tally.of([m.answer.outcome for m in mine]), Tally.of(list(originals.values())),
                      dict(errors.most_common()), (sum(known), len(known)) if known else None)


def forced(res: Result) -> bool | None:
    """Did a forced tool_choice get its call? None when the variant does not force one or nothing finished."""
    if res.answer.outcome in ("rejected", "unfinished"):
        return None
    present, choice = res.job.plan.setting("tool_choice")
    form = match.tool_choice_form(present, choice)
    if form not in ("required", "function", "mcp"):
        return None
    return match.forced_call_happened(form, choice, res.answer.output)
