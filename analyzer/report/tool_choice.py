"""The failure report: requests grouped by tool_choice form, with outcome counts, rates and a headline.

Input is a list of `rtreplay.analyzer.state.request.Request` records (docs/definitions.md says how they are made); output is a
frozen `Report` that the renderers (`rtreplay.analyzer.report.render`, `rtreplay.analyzer.report.html`) print. Nothing here reads
files, so memory is bounded by the number of requests, never by the number of events.

Rules (docs/definitions.md, "Rates"; docs/report.md for the JSON shape):
- groups are keyed by `form_sent` plus the chosen splits; only non-empty groups exist; their order is the
  form order of `rtreplay.analyzer.state.request.FORMS`, then the split values sorted (null last);
- failure rate = failed / (requests - unfinished), with a 95% Wilson score interval on the same denominator;
- the headline (rtreplay.analyzer.report.headline) compares forms within one scope and refuses to conclude
  below `MIN_DECIDED` decided requests.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtreplay.analyzer.report.headline import MIN_DECIDED, Headline, headline_of, interval_text, pct  # noqa: F401
from rtreplay.analyzer.state.request import FORMS, OUTCOMES, Request

Z95 = 1.959964
TOP_ERRORS = 3
DEFAULT_SPLITS: tuple[str, ...] = ("scope",)


class ReportError(ValueError):
    """A report was asked for in a way that cannot work (unknown split, bad time filter)."""


def wilson(failures: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for failures/n; None when n is 0."""
    if n <= 0:
        return None
    p = failures / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds are exactly 0 for 0/n and exactly 1 for n/n; say so instead of keeping rounding noise.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == n else min(1.0, centre + half)
    return low, high


# --- splits -------------------------------------------------------------------------------------------

def _metadata_value(key: str) -> Callable[[Request], Any]:
    def value(r: Request) -> Any:
        if not isinstance(r.metadata, dict) or key not in r.metadata:
            return None
        v = r.metadata[key]
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True)

    return value


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.timezone.utc) if ts.tzinfo is None else ts.astimezone(dt.timezone.utc)


SPLITS: dict[str, Callable[[Request], Any]] = {
    "scope": lambda r: r.scope,
    "input": lambda r: r.input_kind,
    "modalities": lambda r: r.output_modalities,
    "model": lambda r: r.model,
    "tools": lambda r: r.tools_count,
    "session": lambda r: r.session_id,
    "day": lambda r: _utc(r.ts).date().isoformat(),
}
SPLIT_ALIASES = {"conversation": "scope"}
SPLITS["pairing"] = lambda r: r.pairing  # how each request was paired with its answer (definitions.md)
SPLIT_HELP = "scope (alias conversation), input, modalities, model, tools, session, day, pairing, metadata:KEY"


def parse_splits(spec: Sequence[str]) -> tuple[str, ...]:
    """Turn `--by` values into split names.

    Each value may hold several names separated by commas. Names replace the default split (`scope`);
    a name written `+name` is added to it instead; `none` means no split at all. Unknown names raise.
    """
    names: list[str] = []
    add = False
    for raw in spec:
        for part in filter(None, (p.strip() for p in raw.split(","))):
            if part.startswith("+"):
                add, part = True, part[1:]
            if part == "none":
                continue
            part = SPLIT_ALIASES.get(part, part)
            if part not in SPLITS and not (part.startswith("metadata:") and len(part) > len("metadata:")):
                raise ReportError(f"unknown split {part!r}; choose from: {SPLIT_HELP}")
            if part not in names:
                names.append(part)
    if not spec:
        return DEFAULT_SPLITS
    if add:
        names = [s for s in DEFAULT_SPLITS if s not in names] + names
    return tuple(names)


def split_value(name: str, r: Request) -> Any:
    if name.startswith("metadata:"):
        return _metadata_value(name[len("metadata:"):])(r)
    return SPLITS[name](r)


# --- filters ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """Which requests a report covers. `since` is inclusive, `until` exclusive; both UTC."""

    sessions: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    oob_only: bool = False
    pairings: tuple[str, ...] = ()  # only requests paired these ways ("none": unanswered)

    def keep(self, r: Request) -> bool:
        if self.sessions and r.session_id not in self.sessions:
            return False
        if self.pairings and (r.pairing or "none") not in self.pairings:
            return False
        if self.oob_only and r.scope != "out-of-band":
            return False
        ts = _utc(r.ts)
        if self.since is not None and ts < self.since:
            return False
        return self.until is None or ts < self.until

    def as_json(self) -> dict[str, Any]:
        return {
            "sessions": list(self.sessions),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "oob_only": self.oob_only,
            "pairings": list(self.pairings),
        }


def parse_time(text: str) -> dt.datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"not an ISO date or time: {text!r} (e.g. 2026-03-01 or 2026-03-01T12:00)") from None
    return _utc(value)


# --- groups -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorCount:
    outcome: str  # failed or rejected
    error_type: str | None
    error_code: str | None
    count: int


@dataclass(frozen=True)
class Group:
    """Counts and rates for one tool_choice form (and one value of each split)."""

    form: str
    split: tuple[tuple[str, Any], ...]
    requests: int
    outcomes: dict[str, int]
    failure_rate: float | None
    interval: tuple[float, float] | None
    top_errors: tuple[ErrorCount, ...]
    forced_expected: int  # requests with a known forced_call (effective form forced, decided)
    forced_happened: int
    effective_forms: dict[str, int]

    @property
    def decided(self) -> int:
        return self.requests - self.outcomes["unfinished"]

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]


# What a report reads from a request; requests are counted by it once, in C (Counter), and the few distinct
# keys are then folded into groups, totals and the headline.
_Kind = tuple  # (form_sent, scope, split values, outcome, form_effective, forced_call, error_type, error_code)


def count_kinds(requests: Iterable[Request], splits: Sequence[str]) -> Counter[_Kind]:
    return Counter(
        (r.form_sent, r.scope, tuple(split_value(s, r) for s in splits), r.outcome, r.form_effective,
         r.forced_call, r.error_type, r.error_code)
        for r in requests)


@dataclass
class _Tally:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str | None, str | None]] = field(default_factory=Counter)
    forced_expected: int = 0
    forced_happened: int = 0
    effective: Counter[str] = field(default_factory=Counter)

    def add(self, kind: _Kind, n: int) -> None:
        _, _, _, outcome, effective, forced_call, error_type, error_code = kind
        self.requests += n
        self.outcomes[outcome] += n
        self.effective[effective] += n
        if outcome in ("failed", "rejected"):
            self.errors[(outcome, error_type, error_code)] += n
        if forced_call is not None:
            self.forced_expected += n
            self.forced_happened += n if forced_call else 0

    def group(self, form: str, split: tuple[tuple[str, Any], ...]) -> Group:
        outcomes = {o: self.outcomes.get(o, 0) for o in OUTCOMES}
        decided = self.requests - outcomes["unfinished"]
        errors = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or "", kv[0][2] or ""))
        return Group(
            form=form,
            split=split,
            requests=self.requests,
            outcomes=outcomes,
            failure_rate=outcomes["failed"] / decided if decided else None,
            interval=wilson(outcomes["failed"], decided),
            top_errors=tuple(ErrorCount(o, t, c, n) for (o, t, c), n in errors[:TOP_ERRORS]),
            forced_expected=self.forced_expected,
            forced_happened=self.forced_happened,
            effective_forms={f: self.effective[f] for f in FORMS if self.effective.get(f)},
        )


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def fold(kinds: Counter[_Kind], key: Callable[[_Kind], tuple[str, tuple[tuple[str, Any], ...]]]) -> list[Group]:
    """Groups keyed by `key(kind)` = (form, split), in the documented deterministic order."""
    tallies: dict[tuple[str, tuple[tuple[str, Any], ...]], _Tally] = {}
    for kind, n in kinds.items():
        k = key(kind)
        if k not in tallies:
            tallies[k] = _Tally()
        tallies[k].add(kind, n)
    order = {f: i for i, f in enumerate(FORMS)}
    keys = sorted(tallies, key=lambda k: (order.get(k[0], len(FORMS)), k[0], *(_sort_key(v) for _, v in k[1])))
    return [tallies[k].group(*k) for k in keys]


def headline(requests: Sequence[Request]) -> Headline:
    """The headline for `requests` (see `headline_of`)."""
    return headline_of(fold(count_kinds(requests, ()), _by_scope))


def _by_scope(kind: _Kind) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return kind[0], (("scope", kind[1]),)


# --- outcomes over time -------------------------------------------------------------------------------

MAX_BUCKETS = 1000


@dataclass(frozen=True)
class TimeBucket:
    start: dt.datetime
    outcomes: dict[str, int]


TIME_UNITS = (("day", 86400, 3 * 86400), ("hour", 3600, 2 * 3600), ("minute", 60, 2 * 60))  # unit, s, if span >


def over_time(requests: Sequence[Request]) -> tuple[str, tuple[TimeBucket, ...]]:
    """Outcome counts per time bucket, empty buckets included: per day when the requests span more than three
    days, per hour over two hours, per minute over two minutes, else per second (a demo-length archive still
    gets a few bars, not one)."""
    if not requests:
        return "hour", ()
    stamps = [_utc(r.ts).timestamp() for r in requests]
    unit = time_unit(min(stamps), max(stamps))
    step = STEPS[unit]
    return unit, time_buckets(unit, Counter((int(t // step), r.outcome) for t, r in zip(stamps, requests)))


STEPS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def time_unit(first: float, last: float) -> str:
    """The bucket for data from `first` to `last` (epoch seconds): days over three days, hours over two hours,
    minutes over two minutes, else seconds (a demo-length archive still gets a few bars, not one)."""
    return next((unit for unit, _, above in TIME_UNITS if last - first > above), "second")


def time_buckets(unit: str, counts: Counter[tuple[int, str]]) -> tuple[TimeBucket, ...]:
    """Buckets from counts per (slot, outcome), a slot being epoch seconds // the unit's step."""
    if not counts:
        return ()
    step = STEPS[unit]
    slots = {k for k, _ in counts}
    first, last = min(slots), max(slots)
    if last - first < MAX_BUCKETS:  # zero-fill, unless stray timestamps would make it huge
        slots = set(range(first, last + 1))
    return tuple(
        TimeBucket(dt.datetime.fromtimestamp(k * step, dt.timezone.utc), {o: counts.get((k, o), 0) for o in OUTCOMES})
        for k in sorted(slots))


# --- the report ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    splits: tuple[str, ...]
    filters: Filters
    total: Group
    groups: tuple[Group, ...]
    headline: Headline
    time_unit: str
    over_time: tuple[TimeBucket, ...]
    failed: tuple[Request, ...]  # requests with outcome failed, by (session_id, seq)
    source: str | None = None  # the archive path, for links and the JSON header
    problems: tuple[str, ...] = ()  # archive files that could not be read, and why


def build_report(
    requests: Iterable[Request],
    splits: Sequence[str] = DEFAULT_SPLITS,
    filters: Filters = Filters(),
    source: str | None = None,
    problems: Sequence[str] = (),
) -> Report:
    """The report over the requests that pass `filters`, grouped by form_sent and `splits`."""
    unknown = [s for s in splits if s not in SPLITS and not s.startswith("metadata:")]
    if unknown:
        raise ReportError(f"unknown split {unknown[0]!r}; choose from: {SPLIT_HELP}")
    kept = list(requests) if filters == Filters() else [r for r in requests if filters.keep(r)]
    unit, buckets = over_time(kept)
    failed = tuple(sorted((r for r in kept if r.outcome == "failed"), key=lambda r: (r.session_id, r.seq)))
    return report_of(count_kinds(kept, splits), splits, filters, unit, buckets, failed, source, problems)


def report_of(kinds: Counter[_Kind], splits: Sequence[str], filters: Filters, unit: str,
              buckets: tuple[TimeBucket, ...], failed: tuple[Request, ...] = (), source: str | None = None,
              problems: Sequence[str] = ()) -> Report:
    """The report from request counts by kind (what an engine such as Spark aggregates) and time buckets."""
    totals = fold(kinds, lambda k: ("all", ()))
    return Report(
        splits=tuple(splits),
        filters=filters,
        total=totals[0] if totals else _Tally().group("all", ()),
        groups=tuple(fold(kinds, lambda k: (k[0], tuple(zip(splits, k[2]))))),
        headline=headline_of(fold(kinds, _by_scope)),
        time_unit=unit,
        over_time=buckets,
        failed=failed,
        source=source,
        problems=tuple(problems),
    )
