"""Terminal tables that stay readable at any width (analyze's and replay's default output).

A table is printed whole when it fits the console; else with short headers (the caption spells them out); else
also without its optional count columns that are zero in every row (the caption names them); else stacked: one block per row, `header value` pairs wrapped to the
width. Nothing is cut: a value never turns into `requir…` and no column silently vanishes.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

PIPE_WIDTH = 120  # output that is not a terminal (a file, a pipe) is laid out for this many columns


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "right"
    style: str | None = None
    optional: bool = False  # may be left out when it is 0 in every row
    short: str = ""  # a shorter header for narrow terminals (the caption then spells it out)


def console() -> Console:
    """The console for stdout: the terminal's width, $COLUMNS if set, else `PIPE_WIDTH`."""
    out = Console(highlight=False)
    if out.is_terminal or os.environ.get("COLUMNS"):
        return out
    return Console(highlight=False, width=PIPE_WIDTH)


def _table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], total: Sequence[str] | None,
           caption: str | None, labels: int, tight: bool = False) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  caption=caption, caption_justify="left", padding=(0, 0) if tight else (0, 1))  # tight: the box's divider alone
    for i, c in enumerate(columns):
        table.add_column(c.header, justify="left" if i < labels else c.justify, no_wrap=True,  # type: ignore[arg-type]
                         style=c.style or ("bold" if i == 0 else None), min_width=len(c.header))
    for row in rows:
        table.add_row(*row)
    if total is not None and rows:
        table.add_section()
        table.add_row(*total, style="dim")
    return table


def _fits(out: Console, table: Table) -> bool:
    return Measurement.get(out, out.options.update_width(1 << 16), table).maximum <= out.width


def print_table(out: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                total: Sequence[str] | None = None, caption: str | None = None, labels: int = 1) -> None:
    """Print `rows` (all cells text) under `columns`; the first `labels` columns name the row."""
    everything = [*rows, *([total] if total is not None else [])]
    table = _table(title, columns, rows, total, caption, labels)
    if _fits(out, table):
        out.print(table)
        return
    renamed = [c for c in columns if c.short]
    if renamed:
        legend = ", ".join(f"{c.short} = {c.header}" for c in renamed)
        caption = f"{legend}; {caption}" if caption else legend
        columns = [Column(c.short or c.header, c.justify, c.style, c.optional) for c in columns]
        table = _table(title, columns, rows, total, caption, labels, tight=True)
        if _fits(out, table):
            out.print(table)
            return
    zero = [i for i, c in enumerate(columns) if c.optional and all(r[i] in ("0", "") for r in everything)]
    if zero:
        keep = [i for i in range(len(columns)) if i not in zero]
        note = ", ".join(columns[i].header for i in zero) + ": 0 in every row (left out)"
        table = _table(title, [columns[i] for i in keep], [[r[i] for i in keep] for r in rows],
                       None if total is None else [total[i] for i in keep],
                       f"{note}; {caption}" if caption else note, labels, tight=True)
        if _fits(out, table):
            out.print(table)
            return
    _stacked(out, title, columns, rows, total, caption, labels)


def _stacked(out: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]],
             total: Sequence[str] | None, caption: str | None, labels: int) -> None:
    out.print(title, style="bold")
    width = max(20, out.width - 4)
    for row in [*rows, *([total] if total is not None else [])]:
        out.print(" · ".join(v for v in row[:labels] if v) or "-", style="bold", soft_wrap=True)
        pairs = [f"{c.header} {v}" for c, v in zip(columns[labels:], row[labels:]) if v != ""]
        line = ""
        for pair in pairs:
            if line and len(line) + 2 + len(pair) > width:
                out.print("    " + line, soft_wrap=True)
                line = ""
            line = f"{line}  {pair}" if line else pair
        if line:
            out.print("    " + line, soft_wrap=True)
    if caption:
        out.print(caption, style="dim")
