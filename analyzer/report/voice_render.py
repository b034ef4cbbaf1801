"""Renderers shared by the voice reports (latency, interruptions, cost, failures).

Each report value offers `to_json()` (its documented JSON, docs/report.md) and `tables()`: titled tables of
already formatted cells. Terminal, CSV and Markdown are the same tables: the terminal shows each with
rich, at most `WIDTH` columns wide (columns are chosen to fit 80); CSV writes the first table (the report's
main one) and Markdown all of them. Numbers are the JSON's, rounded for reading.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from rich import box
from rich.console import Console
from rich.table import Table as RichTable

WIDTH = 80


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""  # a line printed under the table (what was left out, how to see it)
    raw: tuple[tuple[Any, ...], ...] | None = None  # unrounded cells for CSV (default: rows)
    raw_columns: tuple[str, ...] | None = None  # CSV header when `raw` has other columns


class VoiceReport(Protocol):
    headline: str

    def to_json(self) -> dict[str, Any]: ...

    def tables(self) -> list[Table]: ...


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)


def money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def dumps(value: Any) -> str:
    """Indented JSON, written by orjson (a cost report lists every response: the stdlib is 10x slower)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_json(report: VoiceReport) -> str:
    return dumps(report.to_json())


def render_csv(report: VoiceReport) -> str:
    table = report.tables()[0]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.raw_columns or table.columns)
    for row in table.raw if table.raw is not None else table.rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: VoiceReport) -> str:
    out = [f"**{_md(report.headline)}**", ""]
    for t in report.tables():
        out += [f"### {t.title}", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
        out += ["| " + " | ".join(_md(cell(v)) for v in row) + " |" for row in t.rows]
        out += ([""] + [t.note] if t.note else []) + [""]
    return "\n".join(out)


def render_table(report: VoiceReport, console: Console) -> None:
    for t in report.tables():
        table = RichTable(title=t.title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                          pad_edge=False, title_style="bold")
        for i, c in enumerate(t.columns):
            table.add_column(c, justify="left" if i == 0 or c in LEFT else "right", overflow="fold")
        for row in t.rows:
            table.add_row(*(cell(v) for v in row))
        console.print(table)
        if t.note:
            console.print(t.note, style="dim")
        console.print()
    console.print(report.headline, style="bold", soft_wrap=False)


LEFT = {"session", "kind", "detail", "cause", "model", "measure", "item", "response", "answer", "heard",
        "token kind", "time"}


def short(text: str | None, n: int = 22) -> str | None:
    """Ids are long; tables show their tail (the part that differs)."""
    if text is None or len(text) <= n:
        return text
    return "…" + text[-(n - 1):]


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy 'linear', DuckDB quantile_cont)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
