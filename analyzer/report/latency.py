"""The latency report: how long the caller waits (docs/definitions.md, "Latency").

Measures (milliseconds on the proxy's monotonic clock), each with n, p50/p90/p99 and max:
  turn_to_first_audio          speech_stopped -> first audio delta of the turn's response
  request_to_created           client response.create -> its response.created
  request_to_first_delta       client response.create -> the first delta of its response
  tool_call_to_output          function_call_arguments.done -> the app's function_call_output
  tool_output_to_first_delta   that output -> first delta of the next response created
  tool_round_trip              the call -> that first delta
`turn_to_first_audio` is also given by session minute and by context size (the response's
`usage.input_tokens`, in bins of 1,000).
"""
from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtreplay.analyzer.report.voice_values import SessionFacts
from rtreplay.analyzer.report.voice_render import Table, ms, quantile

MEASURES = ("turn_to_first_audio", "request_to_created", "request_to_first_delta", "tool_call_to_output",
            "tool_output_to_first_delta", "tool_round_trip")
TURN = "turn_to_first_audio"
CONTEXT_BIN = 1000


@dataclass(frozen=True)
class Stat:
    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        v = np.sort(np.asarray(values, dtype=np.float64)).tolist()  # floats, for orjson
        return cls(len(v), quantile(v, 0.5), quantile(v, 0.9), quantile(v, 0.99), v[-1] if v else None)

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}


@dataclass(frozen=True)
class LatencyReport:
    measures: dict[str, Stat]
    by_minute: tuple[tuple[int, Stat], ...]
    by_context: tuple[tuple[int | None, Stat], ...]  # bin start (tokens); None = usage unknown
    histogram: tuple[tuple[float, int], ...]  # turn_to_first_audio: (bin start ms, count)
    turns: int
    sessions: int
    source: str | None = None
    problems: tuple[str, ...] = ()
    headline: str = field(default="")

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "rtreplay.latency", "version": 1, "source": self.source,
            "headline": self.headline, "sessions": self.sessions, "turns": self.turns,
            "measures": [{"measure": m, **self.measures[m].as_json()} for m in MEASURES],
            "by_minute": [{"minute": k, **s.as_json()} for k, s in self.by_minute],
            "by_context": [{"context_tokens": k, **s.as_json()} for k, s in self.by_context],
            "histogram": [{"ms": lo, "count": n} for lo, n in self.histogram],
            "problems": list(self.problems),
        }

    def tables(self) -> list[Table]:
        def rows(pairs: Iterable[tuple[Any, Stat]]) -> tuple[tuple[Any, ...], ...]:
            return tuple((k, s.n, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)) for k, s in pairs)

        def raw(pairs: Iterable[tuple[Any, Stat]]) -> tuple[tuple[Any, ...], ...]:
            return tuple((k, s.n, s.p50, s.p90, s.p99, s.max) for k, s in pairs)

        cols = ("n", "p50 ms", "p90 ms", "p99 ms", "max ms")
        main = [(m, self.measures[m]) for m in MEASURES]
        context = [("unknown" if k is None else f"{k // 1000}k–{(k + CONTEXT_BIN) // 1000}k", s)
                   for k, s in self.by_context]
        return [
            Table("Latency (ms, monotonic clock)", ("measure", *cols), rows(main), raw=raw(main)),
            Table("Time to first audio by session minute", ("minute", *cols), rows(self.by_minute)),
            Table("Time to first audio by context (input tokens)", ("context", *cols), rows(context)),
        ]


def _headline(measures: dict[str, Stat], by_minute: Sequence[tuple[int, Stat]]) -> str:
    t = measures[TURN]
    if t.n == 0:
        r = measures["request_to_first_delta"]
        if r.n == 0:
            return "No latency to report: no spoken turn got audio back and no request got a delta."
        return (f"No spoken turns with audio; requests waited {ms(r.p50)} ms for their first delta at the median, "
                f"{ms(r.p90)} ms at p90 (n={r.n}).")
    text = (f"Callers waited {ms(t.p50)} ms for the first audio after they stopped speaking at the median, "
            f"{ms(t.p90)} ms at p90 and {ms(t.p99)} ms at p99 (n={t.n})")
    if len(by_minute) >= 2:
        first, last = by_minute[0], by_minute[-1]
        text += (f"; median {ms(first[1].p50)} ms in minute {first[0]} vs {ms(last[1].p50)} ms in minute "
                 f"{last[0]}")
    return text + "."


def histogram(values: Sequence[float], bins: int = 20) -> tuple[tuple[float, int], ...]:
    if not values:
        return ()
    hi = max(values)
    step = max(50.0, -(-hi // (bins * 50)) * 50)  # a round width (multiple of 50 ms)
    counts: dict[int, int] = defaultdict(int)
    for v in values:
        counts[int(max(v, 0) // step)] += 1
    return tuple((k * step, counts.get(k, 0)) for k in range(max(counts) + 1))


class Fold:
    """The report folded session by session: each sample kept as one float (array('d')), never an object."""

    def __init__(self) -> None:
        self.values: dict[str, array] = defaultdict(lambda: array("d"))
        self.minute: dict[int, array] = defaultdict(lambda: array("d"))
        self.context: dict[int | None, array] = defaultdict(lambda: array("d"))
        self.turns = self.sessions = 0

    def add(self, f: SessionFacts) -> None:
        self.sessions += 1
        self.turns += f.turns
        for s in f.samples:
            self.values[s.measure].append(s.ms)
            if s.measure == TURN:
                self.minute[s.minute].append(s.ms)
                self.context[None if s.context_tokens is None else
                             s.context_tokens // CONTEXT_BIN * CONTEXT_BIN].append(s.ms)

    def report(self, source: str | None = None, problems: Sequence[str] = ()) -> LatencyReport:
        measures = {m: Stat.of(self.values.get(m, array("d"))) for m in MEASURES}
        by_minute = tuple((k, Stat.of(self.minute[k])) for k in sorted(self.minute))
        by_context = tuple((k, Stat.of(self.context[k]))
                           for k in sorted(self.context, key=lambda k: (k is None, k or 0)))
        return LatencyReport(measures, by_minute, by_context, histogram(self.values.get(TURN, array("d"))),
                             self.turns, self.sessions, source, tuple(problems), _headline(measures, by_minute))


def build(facts: Iterable[SessionFacts], source: str | None = None, problems: Sequence[str] = ()) -> LatencyReport:
    fold = Fold()
    for f in facts:
        fold.add(f)
    return fold.report(source, problems)
