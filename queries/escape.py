"""Recorded text is attacker-controlled (any client or upstream wrote it): escape it for where it is shown.

  - `terminal`: control characters (ESC, BEL, C1 …) become visible `\\x1b`-style escapes, so an OSC title,
    OSC 8 hyperlink or OSC 52 clipboard write in a payload is printed, never obeyed. Newlines and tabs stay
    unless `one_line`.
  - `rich`: the same, as a `rich.text.Text`, so `[/x]` or `[link=…]` is shown literally, never parsed as markup.
  - `csv_cell`: a text cell that a spreadsheet would run as a formula (first character `= + - @`, tab or
    CR) gets a leading `'` (OWASP's advice), and its control characters are made visible as above; numbers
    are left alone. (JSON output escapes control characters itself; Parquet output is exact.)
HTML escaping is done by the HTML page's own renderer (`html.escape` throughout).
"""
from __future__ import annotations

import re
from typing import Any

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(c) or f"\\x{c:02x}"


def terminal(text: str, one_line: bool = False) -> str:
    """`text` with every control character (but newline and tab, unless `one_line`) made visible."""
    return (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_visible, text)


def rich(value: Any) -> Text:
    """A value as literal Rich text: no markup parsed, no control character passed."""
    return Text(terminal("" if value is None else str(value)))


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula and no terminal obeys (newlines and tabs kept)."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START):
        value = "'" + value
    return terminal(value)
