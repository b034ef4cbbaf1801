"""The report's headline: one sentence saying which tool_choice form fails most, and how rates are written.

Rules (docs/definitions.md, "Rates"): forms are compared within one scope, out-of-band first; a form takes
part only with at least `MIN_DECIDED` decided requests; the verdict says whether the 95% intervals overlap.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtreplay.analyzer.report.tool_choice import Group

MIN_DECIDED = 10  # decided requests a form needs before the headline compares it


def pct(x: float | None) -> str:
    """A rate as a short percentage; one decimal only where rounding would say 0% or 100% wrongly."""
    if x is None:
        return "n/a"
    v = round(x * 100, 1)
    if 0 < v < 1 or 99 < v < 100:
        return f"{v:.1f}%"
    return f"{v:.0f}%"


def interval_text(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "n/a"
    return f"{pct(interval[0]).rstrip('%')}–{pct(interval[1])}"


@dataclass(frozen=True)
class Headline:
    """One sentence answering "which tool_choice form fails most?", and what it rests on."""

    text: str
    scope: str | None = None  # the scope compared; None when there was too little data
    worst: Group | None = None
    best: Group | None = None
    overlap: bool | None = None  # do the two 95% intervals overlap?


_SCOPE_WORDS = {"out-of-band": "Out-of-band", "default": "Default-conversation"}


def _describe(g: Group) -> str:
    return f"{pct(g.failure_rate)} ({g.failed}/{g.decided}, 95% CI {interval_text(g.interval)})"


def _compare(scope: str, groups: list[Group]) -> Headline:
    worst = max(groups, key=lambda g: (g.failure_rate, g.decided))
    best = min(groups, key=lambda g: (g.failure_rate, -g.decided))
    who = _SCOPE_WORDS[scope]
    if worst.failure_rate == best.failure_rate:
        forms = ", ".join(f"`{g.form}`" for g in groups)
        text = (f"{who} requests failed at the same rate ({pct(worst.failure_rate)}) for every tool_choice form "
                f"with at least {MIN_DECIDED} decided requests ({forms}).")
        return Headline(text, scope, worst, best, True)
    # Every form tied at the best rate is named: "does a string form avoid it?" wants them all. The
    # overlap verdict uses the tied form with the widest interval, so it never overclaims.
    ties = [g for g in groups if g.failure_rate == best.failure_rate]
    best = max(ties, key=lambda g: (g.interval[1], -g.decided)) if len(ties) > 1 else best  # type: ignore[index]
    assert worst.interval is not None and best.interval is not None  # decided >= MIN_DECIDED > 0
    overlap = worst.interval[0] <= best.interval[1]
    verdict = "intervals overlap, so the difference may be chance" if overlap else "intervals do not overlap"
    names = ", ".join(f"`{g.form}`" for g in ties)
    if len(ties) == 1:
        detail = f"{best.failed}/{best.decided}, {interval_text(best.interval)}"
    elif len({(g.failed, g.decided) for g in ties}) == 1:
        detail = f"{best.failed}/{best.decided} each, {interval_text(best.interval)}"
    else:
        detail = ", ".join(f"`{g.form}` {g.failed}/{g.decided}" for g in ties) + f"; widest {interval_text(best.interval)}"
    text = (f"{who} requests with tool_choice form `{worst.form}` failed {_describe(worst)} "
            f"vs {pct(best.failure_rate)} for {names} ({detail}): {verdict}.")
    return Headline(text, scope, worst, best, overlap)


def headline_of(groups: Sequence[Group]) -> Headline:
    """Compare failure rates by form, out-of-band requests first, then the default conversation.

    `groups` are split by scope alone (one per form and scope).
    A form takes part only with at least `MIN_DECIDED` decided requests and only if it ran: a form whose
    requests were all rejected was never tried, so it is no evidence of failing or of avoiding failure.
    With fewer than two such forms in a scope that scope cannot answer, and with no scope able to, the
    headline says so plainly.
    """
    if not groups:
        return Headline("No requests to report (the archive holds no response.create, or none match the filters).")
    by_scope = {s: [g for g in groups if g.split[0][1] == s] for s in _SCOPE_WORDS}
    for scope in _SCOPE_WORDS:
        enough = [g for g in by_scope[scope] if g.decided >= MIN_DECIDED and g.outcomes["rejected"] < g.decided]
        if len(enough) >= 2:
            result = _compare(scope, enough)
            if scope == "default" and by_scope["out-of-band"]:
                result = Headline(result.text[:-1] + " (out-of-band: too few requests to tell).",
                                  result.scope, result.worst, result.best, result.overlap)
            return result
    have = "; ".join(
        f"{scope}: " + ", ".join(f"{g.form} {g.decided}" for g in gs) for scope, gs in by_scope.items() if gs
    )
    return Headline(f"Too few requests to tell: no scope has two tool_choice forms with at least {MIN_DECIDED} "
                    f"decided requests each (decided requests per form, {have}).")
