"""The voice reports by name, built from one read of the archive (`voice_facts`), and their combined output.

    facts, problems = voice_facts.read_archive("logs/")
    reports = build_reports(["latency", "cost"], facts, source="logs/")
    print(render(reports, "markdown"))
"""
from __future__ import annotations

from collections.abc import Sequence
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


def build_reports(names: Sequence[str], facts: Sequence[SessionFacts], *, prices: cost.Prices | None = None,
                  source: str | None = None, problems: Sequence[str] = ()) -> dict[str, Any]:
    """The voice reports among `names`, in `VOICE` order."""
    out: dict[str, Any] = {}
    for name in VOICE:
        if name not in names:
            continue
        if name == "cost":
            out[name] = cost.build(facts, prices, source, problems)
        else:
            out[name] = {"latency": latency, "interruptions": interruptions, "failures": failures}[name].build(
                facts, source, problems)
    return out


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
