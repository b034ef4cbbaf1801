"""The voice reports by name, built in one pass over the archive (`voice_read.iter_facts`, each session folded
into every report asked for, then dropped), and their combined output.

    problems: list[str] = []
    reports = build_reports(["latency", "cost"], voice_read.iter_facts("logs/", problems=problems), source="logs/",
                            problems=problems)
    print(render(reports, "markdown"))
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rtreplay.analyzer.report import cost, failures, interruptions, latency
from rtreplay.analyzer.report.voice_values import SessionFacts
from rtreplay.analyzer.report.voice_render import dumps, render_csv, render_json, render_markdown

VOICE = ("latency", "interruptions", "cost", "failures")
REPORTS = ("tool_choice", *VOICE)
REPORT_HELP = "tool_choice (default), latency, interruptions, cost, failures, all"


class ChoiceError(ValueError):
    """An unknown report name or an output that cannot hold the reports asked for."""


def parse_reports(spec: Sequence[str]) -> tuple[str, ...]:
    """`--report` values (comma-separated or repeated) as report names in the documented order."""
    names: set[str] = set()
    for raw in spec:
        for part in filter(None, (p.strip() for p in raw.split(","))):
            if part == "all":
                names |= set(REPORTS)
            elif part in REPORTS:
                names.add(part)
            else:
                raise ChoiceError(f"unknown report {part!r}; choose from: {REPORT_HELP}")
    return tuple(n for n in REPORTS if n in names) or ("tool_choice",)


def build_reports(names: Sequence[str], facts: Iterable[SessionFacts], *, prices: cost.Prices | None = None,
                  source: str | None = None, problems: Sequence[str] = ()) -> dict[str, Any]:
    """The voice reports among `names`, in `VOICE` order, from one pass over `facts` (an iterator is read
    once, each session folded into every report and then dropped: `voice_read.iter_facts`). `problems` is
    read after the pass, so a list that the iterator fills as it reads is complete."""
    folds: dict[str, Any] = {}
    for name in VOICE:
        if name in names:
            folds[name] = cost.Fold(prices) if name == "cost" else \
                {"latency": latency, "interruptions": interruptions, "failures": failures}[name].Fold()
    for f in facts:
        for fold in folds.values():
            fold.add(f)
    return {name: fold.report(source, problems) for name, fold in folds.items()}


def render(reports: dict[str, Any], fmt: str) -> str:
    """json / csv / markdown of the voice reports: one report as documented; several in one document."""
    if fmt == "csv":
        if len(reports) != 1:
            raise ChoiceError("--format csv writes one report; ask for one with --report NAME")
        return render_csv(next(iter(reports.values())))
    if fmt == "json":
        if len(reports) == 1:
            return render_json(next(iter(reports.values())))
        return dumps({"report": "rtreplay.voice", "version": 1, "reports": {n: r.to_json() for n, r in reports.items()}})
    return "\n".join(f"## {n}\n\n" + render_markdown(r) for n, r in reports.items())
