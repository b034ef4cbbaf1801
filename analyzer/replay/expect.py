"""Expectations on replays: a small language, decided per variant, on intervals rather than point estimates.

Grammar (docs/replay.md, "Expectations"):

    EXPECTATION := [ "variant=" VARIANT ":" ] CHECK
    CHECK       := ("failure_rate" | "forced_rate") ("<=" | "<" | ">=" | ">") PERCENT    e.g. failure_rate<=5%
                 | "outcome" ("==" | "!=") OUTCOME                                       e.g. outcome==completed
                 | "function" ("==" | "!=") NAME                                         e.g. function==lookup_customer
                 | "arguments_valid"
                 | "same=" MATCHER ("," MATCHER)*                                        e.g. same=outcome,function

Without a `variant=` prefix a check is decided once for every variant sent. Each decision is `holds`,
`fails` or `inconclusive` (which counts as not holding), with a sentence saying how it was reached:

- Rates use the 95% Wilson interval of the variant's replays (the report's intervals), never the point
  estimate: `<= p` holds when the upper bound is ≤ p and fails when the lower bound is > p; `>= p` holds when
  the lower bound is ≥ p and fails when the upper bound is < p; otherwise the replays cannot tell, and the
  sentence says how many replays without an exception would be needed. 0 failures in 3 replays does not
  show a failure rate ≤ 5% (its interval is 0–56%): it takes 73.
- The other checks are about every replay of the variant: one counter-example fails them; an unfinished
  replay (no answer) leaves them inconclusive unless another replay already failed them.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtreplay.analyzer.replay.summary import forced
from rtreplay.analyzer.replay.compare import MATCHERS, MatcherError, check_names, compare, function_calls, shown
from rtreplay.analyzer.replay.schema import arguments_problem
from rtreplay.analyzer.report.tool_choice import interval_text, pct, wilson
from rtreplay.analyzer.state.request import OUTCOMES

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
CHECK_NAMES = ("failure_rate", "forced_rate", "outcome", "function", "arguments_valid", "same")
_RATE = re.compile(r"(failure_rate|forced_rate)\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)\s*(%?)")
_EQUALS = re.compile(r"(outcome|function)\s*(==|!=)\s*([A-Za-z0-9_.:-]+)")
_SAME = re.compile(r"same\s*=\s*([a-z_]+(?:\s*,\s*[a-z_]+)*)")


class ExpectError(ValueError):
    """An expectation that cannot be read, or names a variant that is not sent."""


@dataclass(frozen=True)
class Expectation:
    text: str  # as written
    check: str  # one of CHECK_NAMES
    op: str | None = None
    value: Any = None  # threshold (0..1), outcome, function name, or matcher names
    variant: str | None = None  # None: every variant
    body: str = ""  # the check as written, without the variant prefix

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expectation:
    """One expectation; `ExpectError` (saying what is expected) for anything else."""
    spec = text.strip()
    if spec.startswith("variant="):
        # The variant name may hold ':' and '=' itself (tool_choice=function:NAME): split at the last ':'
        # after which a whole check follows.
        for at in reversed([m.start() for m in re.finditer(":", spec)]):
            check = _check(spec[at + 1:].strip())
            if check is not None and spec[len("variant="):at].strip():
                return Expectation(text.strip(), *check, variant=spec[len("variant="):at].strip(),
                                   body=spec[at + 1:].strip())
    else:
        check = _check(spec)
        if check is not None:
            return Expectation(spec, *check, body=spec)
    raise ExpectError(f"--expect {text!r}: expected [variant=NAME:]CHECK, CHECK one of failure_rate<=5%, "
                      "forced_rate>=95%, outcome==completed, function==NAME, arguments_valid, "
                      f"same={','.join(MATCHERS)} (docs/replay.md)")


def _check(body: str) -> tuple[str, str | None, Any] | None:
    if m := _RATE.fullmatch(body):
        number = float(m.group(3))
        value = number / 100 if m.group(4) else number
        return (m.group(1), m.group(2), value) if 0 <= value <= 1 else None
    if m := _EQUALS.fullmatch(body):
        if m.group(1) == "outcome" and m.group(3) not in OUTCOMES:
            return None
        return m.group(1), m.group(2), m.group(3)
    if body == "arguments_valid":
        return "arguments_valid", None, None
    if m := _SAME.fullmatch(body):
        try:
            return "same", None, tuple(check_names([n.strip() for n in m.group(1).split(",")]))
        except MatcherError:
            return None
    return None


def check_variants(expectations: Sequence[Expectation], variant_names: Sequence[str]) -> None:
    """Fail before anything is sent when an expectation names a variant that will not be sent."""
    for e in expectations:
        if e.variant is not None and e.variant not in variant_names:
            raise ExpectError(f"--expect {e.text!r}: no variant {e.variant!r} is sent "
                              f"(variants: {', '.join(variant_names)})")


# --- deciding -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    expectation: Expectation
    variant: str
    verdict: str  # holds | fails | inconclusive
    how: str  # one sentence: the evidence and the rule applied

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS


def decide(expectations: Sequence[Expectation], results: Sequence[Any]) -> list[Decision]:
    """Every expectation against the results (`run.Result`s) of each variant it applies to."""
    by_variant: dict[str, list[Any]] = {}
    for res in results:
        by_variant.setdefault(res.job.variant.name, []).append(res)
    out = []
    for e in expectations:
        for name, mine in by_variant.items():
            if e.variant is None or e.variant == name:
                verdict, how = CHECKS[e.check](e, mine)
                out.append(Decision(e, name, verdict, how))
    return out


def exit_code(decisions: Sequence[Decision]) -> int:
    """0 when every decision holds, else 1 (inconclusive counts as not holding)."""
    return 0 if all(d.holds for d in decisions) else 1


def _rate(e: Expectation, results: Sequence[Any]) -> tuple[str, str]:
    if e.check == "failure_rate":
        decided = [r for r in results if r.answer.outcome != "unfinished"]
        k, n, what = sum(r.answer.outcome == "failed" for r in decided), len(decided), "failed"
    else:
        known = [f for f in (forced(r) for r in results) if f is not None]
        k, n, what = sum(known), len(known), "forced call made"
        if not n:
            return INCONCLUSIVE, "no finished replay of this variant forces a tool (tool_choice required, function or mcp)"
    if not n:
        return INCONCLUSIVE, "no replay of this variant got an answer"
    low, high = wilson(k, n) or (0.0, 1.0)
    p, op = e.value, e.op
    evidence = f"{what} {k}/{n} ({pct(k / n)}), 95% CI {interval_text((low, high))}"
    if op in ("<=", "<"):
        if high <= p if op == "<=" else high < p:
            return HOLDS, f"{evidence}: upper bound {_p(high)} {_sym(op)} {_p(p)}"
        if low > p if op == "<=" else low >= p:
            return FAILS, f"{evidence}: lower bound {_p(low)} {'>' if op == '<=' else '≥'} {_p(p)}"
        need = _needed(lambda m: (wilson(0, m) or (0, 1))[1] <= p if op == "<=" else (wilson(0, m) or (0, 1))[1] < p)
    else:
        if low >= p if op == ">=" else low > p:
            return HOLDS, f"{evidence}: lower bound {_p(low)} {_sym(op)} {_p(p)}"
        if high < p if op == ">=" else high <= p:
            return FAILS, f"{evidence}: upper bound {_p(high)} {'<' if op == '>=' else '≤'} {_p(p)}"
        need = _needed(lambda m: (wilson(m, m) or (0, 1))[0] >= p if op == ">=" else (wilson(m, m) or (0, 1))[0] > p)
    hint = f"; even with no exception it takes {need} answered replays" if need else ""
    return INCONCLUSIVE, f"{evidence}: the interval contains {_p(p)}, so {n} replays cannot tell{hint}"


def _needed(enough: Any, cap: int = 1_000_000) -> int | None:
    """The fewest replays with which the best possible result would decide (None: more than `cap`)."""
    n = 1
    while n <= cap:
        if enough(n):
            return n
        n = n + 1 if n < 10_000 else n * 2
    return None


def _p(x: float) -> str:
    text = f"{x * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _sym(op: str) -> str:
    return {"<=": "≤", ">=": "≥"}.get(op, op)


def _every(results: Sequence[Any], bad: Any, describe: str) -> tuple[str, str]:
    """Shared rule of the all-of checks: `bad(result)` gives a counter-example's description or None."""
    answered = [r for r in results if r.answer.outcome != "unfinished"]
    against = [why for why in map(bad, answered) if why]
    if against:
        return FAILS, f"{len(against)}/{len(answered)} answered replays break it; first: {against[0]}"
    missing = len(results) - len(answered)
    if missing or not answered:
        return INCONCLUSIVE, f"{describe} in {len(answered)} answered replays, but {missing} got no answer"
    return HOLDS, f"{describe} in all {len(answered)} replays"


def _outcome(e: Expectation, results: Sequence[Any]) -> tuple[str, str]:
    if e.op == "==":
        counts = {o: sum(r.answer.outcome == o for r in results) for o in OUTCOMES}
        others = ", ".join(f"{o} {n}" for o, n in counts.items() if n and o not in (e.value, "unfinished"))
        if others:
            return FAILS, f"{counts[e.value]}/{len(results)} {e.value}; also {others}"
        return _every(results, lambda _r: None, f"outcome {e.value}")
    hit = sum(r.answer.outcome == e.value for r in results)
    if hit:
        return FAILS, f"{hit}/{len(results)} replays {e.value}"
    return _every(results, lambda _r: None, f"no {e.value}")


def _function(e: Expectation, results: Sequence[Any]) -> tuple[str, str]:
    def bad(r: Any) -> str | None:
        names = [c.get("name") for c in function_calls(r.answer)]
        if e.op == "==" and e.value not in names:
            return f"a {r.answer.outcome} replay called {', '.join(map(str, names)) or 'no function'}"
        if e.op == "!=" and e.value in names:
            return f"a replay called {e.value}"
        return None
    return _every(results, bad, f"{'a' if e.op == '==' else 'no'} call of {e.value}")


def _arguments_valid(e: Expectation, results: Sequence[Any]) -> tuple[str, str]:
    calls = sum(len(function_calls(r.answer)) for r in results)
    if not calls:
        return INCONCLUSIVE, "no replay called a function: there are no arguments to check"
    verdict, how = _every(results, arguments_problems, "valid arguments")
    return verdict, how.replace("valid arguments in", f"{calls} calls with valid arguments in")


def arguments_problems(res: Any) -> str | None:
    """The first function call of a replay whose arguments break its tool's schema, described; or None."""
    _, tools = res.job.plan.setting("tools")
    schemas = {t.get("name"): t.get("parameters") for t in tools or [] if isinstance(t, dict)
               and t.get("type", "function") == "function"}
    for call in function_calls(res.answer):
        name = call.get("name")
        if name not in schemas:
            return f"it called {name!r}, which is not among the request's tools"
        why = arguments_problem(call.get("arguments"), schemas[name])
        if why:
            return f"{name}: {why}"
    return None


def _same(e: Expectation, results: Sequence[Any]) -> tuple[str, str]:
    def bad(r: Any) -> str | None:
        if r.job.recorded is None:
            return "no recorded answer to compare with"
        for name, (same, mine, theirs) in compare(r.answer, r.job.recorded, list(e.value)).items():
            if not same:
                return f"{name}: replay {shown(mine)} vs recorded {shown(theirs)}"
        return None
    return _every(results, bad, f"the recorded {', '.join(e.value)}")


CHECKS = {"failure_rate": _rate, "forced_rate": _rate, "outcome": _outcome, "function": _function,
          "arguments_valid": _arguments_valid, "same": _same}


# --- output ---------------------------------------------------------------------------------------------

MARKS = {HOLDS: "PASS", FAILS: "FAIL", INCONCLUSIVE: "INCONCLUSIVE"}


def render(decisions: Sequence[Decision]) -> str:
    """One line per decision, under a header saying how rates are decided."""
    if not decisions:
        return ""
    lines = ["Expectations (rates decided on the 95% Wilson interval; inconclusive counts as not holding):"]
    for d in decisions:
        lines.append(f"  {MARKS[d.verdict]:<12} {d.variant}: {d.expectation.body} — {d.how}")
    held = sum(d.holds for d in decisions)
    lines.append(f"{held}/{len(decisions)} expectations hold")
    return "\n".join(lines) + "\n"


def as_json(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    return [{"expectation": d.expectation.text, "variant": d.variant, "verdict": d.verdict, "how": d.how}
            for d in decisions]
