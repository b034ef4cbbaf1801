"""Print a `Report`: JSON (documented in docs/report.md), CSV, Markdown, or a terminal table.

JSON is the contract: keys in a fixed order, groups in the report's deterministic order, nulls where a
value is undefined (no decided requests, no forced form). The other formats show the same numbers.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console

from rtreplay.analyzer.state.request import OUTCOMES
from rtreplay.analyzer.report.terminal import Column, print_table
from rtreplay.queries.escape import csv_cell, rich, terminal
from rtreplay.analyzer.report.tool_choice import ErrorCount, Group, Headline, Report, interval_text, pct

JSON_VERSION = 1


def _group_fields(g: Group) -> dict[str, Any]:
    return {
        "requests": g.requests,
        **g.outcomes,
        "decided": g.decided,
        "failure_rate": g.failure_rate,
        "ci_low": g.interval[0] if g.interval else None,
        "ci_high": g.interval[1] if g.interval else None,
        "forced_call": {"expected": g.forced_expected, "happened": g.forced_happened} if g.forced_expected else None,
        "form_effective": g.effective_forms,
        "top_errors": [
            {"outcome": e.outcome, "type": e.error_type, "code": e.error_code, "count": e.count} for e in g.top_errors
        ],
    }


def _side(g: Group | None) -> dict[str, Any] | None:
    if g is None:
        return None
    return {
        "form": g.form,
        "failed": g.failed,
        "decided": g.decided,
        "failure_rate": g.failure_rate,
        "ci_low": g.interval[0] if g.interval else None,
        "ci_high": g.interval[1] if g.interval else None,
    }


def _headline(h: Headline) -> dict[str, Any]:
    return {"text": h.text, "scope": h.scope, "worst": _side(h.worst), "best": _side(h.best), "overlap": h.overlap}


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON data, shaped as docs/report.md describes."""
    return {
        "report": "rtreplay.analyze",
        "version": JSON_VERSION,
        "source": report.source,
        "filters": report.filters.as_json(),
        "split_by": list(report.splits),
        "headline": _headline(report.headline),
        "totals": _group_fields(report.total),
        "groups": [{"form": g.form, "split": dict(g.split), **_group_fields(g)} for g in report.groups],
        "over_time": {
            "unit": report.time_unit,
            "buckets": [{"start": b.start.isoformat(), **b.outcomes} for b in report.over_time],
        },
        "problems": list(report.problems),
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


def error_text(e: ErrorCount) -> str:
    """`code ×n` (the type when there is no code), prefixed `rejected` for rejections; JSON keeps both."""
    label = e.error_code or e.error_type or "?"
    return f"{'rejected ' if e.outcome == 'rejected' else ''}{label} ×{e.count}"


def forced_text(g: Group) -> str:
    return f"{g.forced_happened}/{g.forced_expected}" if g.forced_expected else ""


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


CSV_COUNTS = ("requests", *OUTCOMES, "decided")


def render_csv(report: Report) -> str:
    """One row per group; empty cells for nulls; top errors joined with `; `."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["form", *report.splits, *CSV_COUNTS, "failure_rate", "ci_low", "ci_high",
                     "forced_expected", "forced_happened", "top_errors"])
    for g in report.groups:
        fields = _group_fields(g)
        writer.writerow([csv_cell(c) for c in [
            g.form, *(_cell(v) for _, v in g.split), *(fields[k] for k in CSV_COUNTS),
            _cell(fields["failure_rate"]), _cell(fields["ci_low"]), _cell(fields["ci_high"]),
            g.forced_expected if g.forced_expected else "", g.forced_happened if g.forced_expected else "",
            "; ".join(error_text(e) for e in g.top_errors),
        ]])
    return out.getvalue()


HEADERS = ("requests", "completed", "failed", "cancelled", "incomplete", "rejected", "unfinished",
           "failure rate (95% CI)", "forced call", "top errors")


def _row(g: Group) -> list[str]:
    rate = f"{pct(g.failure_rate)} ({interval_text(g.interval)})" if g.interval else "n/a"
    return [str(g.requests), *(str(g.outcomes[o]) for o in OUTCOMES), rate, forced_text(g),
            "; ".join(error_text(e) for e in g.top_errors)]


def _md_escape(text: str) -> str:
    return terminal(text, one_line=True).replace("|", "\\|")


def render_markdown(report: Report) -> str:
    lines = [f"**{_md_escape(report.headline.text)}**", ""]
    header = ["form", *report.splits, *HEADERS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for g in report.groups:
        cells = [f"`{g.form}`", *(_cell(v) for _, v in g.split), *_row(g)]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    t = report.total
    lines += ["", f"All requests: {t.requests}, failure rate {pct(t.failure_rate)} ({interval_text(t.interval)})."]
    return "\n".join(lines) + "\n"


# Terminal headers are short and top errors go under the table, so that the numbers fit a terminal
# (narrower ones get a compact or stacked layout: rtreplay.analyzer.report.terminal).
TABLE_COLUMNS = (Column("req"), Column("ok"), Column("failed", style="red", short="fail"),
                 Column("cancel", optional=True, short="canc"), Column("incompl", optional=True, short="inc"),
                 Column("reject", optional=True, short="rej"), Column("unfin", optional=True, short="unf"),
                 Column("rate"), Column("95% CI", short="CI"), Column("forced", optional=True, short="forc"))


def render_table(report: Report, console: Console) -> None:
    """The terminal table (one row per group), the top errors per group under it, then the headline."""
    def cells(g: Group) -> list[str]:
        return [str(g.requests), *(str(g.outcomes[o]) for o in OUTCOMES), pct(g.failure_rate),
                interval_text(g.interval), forced_text(g)]

    columns = [Column("form"), *(Column(s, justify="left") for s in report.splits), *TABLE_COLUMNS]
    # Recorded values (forms, split values) are shown as literal text: never markup, never escapes.
    rows = [[rich(g.form), *(rich(_cell(v)) for _, v in g.split), *cells(g)] for g in report.groups]
    total = ["all", *("" for _ in report.splits), *cells(report.total)] if report.groups else None
    print_table(console, "Requests by tool_choice form", columns, rows, total=total, labels=1 + len(report.splits),
                caption="ok = completed, unfin = unfinished, rate = failed / (req - unfin), "
                        "forced = forced call happened / known")
    with_errors = [g for g in report.groups if g.top_errors]
    if with_errors:
        console.print("Top errors:", style="bold")
        for g in with_errors:
            where = " ".join([g.form, *(_cell(v) for _, v in g.split)])
            console.print(rich(f"  {where}: " + "; ".join(error_text(e) for e in g.top_errors)), highlight=False)
    console.print(rich(report.headline.text), style="bold", highlight=False)
