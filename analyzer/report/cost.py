"""The cost report: what the sessions cost, from the `usage` the server reported (docs/definitions.md, "Cost").

Each `response.done` usage is split into token kinds (text/audio/image input, their cached parts, text/audio
output) and priced with a table that ships as data (`prices.json`: per model and token kind, USD per 1M
tokens, with the page and date the prices were taken from: queries/prices.json); `--prices FILE` replaces it. Input transcription
is priced from `conversation.item.input_audio_transcription.completed` usage, by tokens or by duration.
Audio generated but never heard (cut by a valid truncate) is priced apart: the response's audio output cost
times the share of its generated audio that came after `audio_end_ms`. No network is used.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtreplay.analyzer.report.voice_values import SessionFacts
from rtreplay.analyzer.report.voice_render import Table, money, short
from rtreplay.queries.prices import KINDS, PriceError, Prices, load_prices

LIST_LIMIT = 30

__all__ = ["KINDS", "PriceError", "Prices", "load_prices", "build", "tokens_of", "price_tokens", "transcription_cost"]

def _int(v: Any) -> int:
    return v if type(v) is int and v > 0 else 0  # a JSON integer (bool is not int's exact type)


def tokens_of(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Token counts by kind (docs/definitions.md): uncached input = input − cached of the same modality."""
    # `type(x) is dict`: usage comes from JSON; an abc isinstance per field was a third of the cost report's time
    u = usage if isinstance(usage, dict) else {}
    inp = u.get("input_token_details")
    inp = inp if type(inp) is dict else {}
    out = u.get("output_token_details")
    out = out if type(out) is dict else {}
    cached = inp.get("cached_tokens_details")
    cached = cached if type(cached) is dict else None
    c_text = _int(cached.get("text_tokens")) if cached is not None else _int(inp.get("cached_tokens"))
    c_audio = _int(cached.get("audio_tokens")) if cached is not None else 0
    c_image = _int(cached.get("image_tokens")) if cached is not None else 0
    return {
        "text_input": max(0, _int(inp.get("text_tokens")) - c_text), "text_cached_input": c_text,
        "text_output": _int(out.get("text_tokens")),
        "audio_input": max(0, _int(inp.get("audio_tokens")) - c_audio), "audio_cached_input": c_audio,
        "audio_output": _int(out.get("audio_tokens")),
        "image_input": max(0, _int(inp.get("image_tokens")) - c_image), "image_cached_input": c_image,
    }


def price_tokens(tokens: Mapping[str, int], entry: Mapping[str, Any] | None) -> float | None:
    """USD for `tokens`; None when the model or a kind with tokens has no price."""
    if entry is None:
        return None
    total = 0.0
    for kind, n in tokens.items():
        if n:
            if not isinstance(entry.get(kind), (int, float)):
                return None
            total += n * entry[kind] / 1e6
    return total


def transcription_cost(usage: Mapping[str, Any] | None, entry: Mapping[str, Any] | None) -> tuple[dict[str, int], float, float | None]:
    """(tokens by kind, seconds, USD) of one transcription's usage."""
    u = usage if isinstance(usage, Mapping) else {}
    if u.get("type") == "duration":
        sec = u.get("seconds")
        seconds = float(sec) if isinstance(sec, (int, float)) and not isinstance(sec, bool) else 0.0
        per = entry.get("per_minute") if entry is not None else None
        return {}, seconds, (seconds / 60 * per if isinstance(per, (int, float)) else None) if seconds else 0.0
    d = u.get("input_token_details") if isinstance(u.get("input_token_details"), Mapping) else None
    audio = _int(d.get("audio_tokens")) if d is not None else _int(u.get("input_tokens"))
    text = _int(d.get("text_tokens")) if d is not None else 0
    tokens = {"audio_input": audio, "text_input": text, "text_output": _int(u.get("output_tokens"))}
    return tokens, 0.0, price_tokens(tokens, entry)


@dataclass(frozen=True, slots=True)
class Line:
    """Cost of one session, turn or response: tokens by kind, USD, and the unheard audio's share."""
    key: tuple[Any, ...]
    model: str | None
    responses: int
    tokens: dict[str, int]
    usd: float | None  # None when something in it has no price
    unheard_usd: float
    transcription_usd: float | None
    unpriced: int  # responses/transcriptions without a price

    def as_json(self, names: Sequence[str]) -> dict[str, Any]:
        return {**dict(zip(names, self.key)), "model": self.model, "responses": self.responses,
                "tokens": self.tokens, "usd": self.usd, "transcription_usd": self.transcription_usd,
                "unheard_audio_usd": self.unheard_usd, "unpriced": self.unpriced}


class _Acc:
    def __init__(self) -> None:
        self.model: str | None = None
        self.responses = 0
        self.tokens: dict[str, int] = defaultdict(int)
        self.usd = 0.0
        self.unheard = 0.0
        self.tr_usd = 0.0
        self.unpriced = 0

    def line(self, key: tuple[Any, ...]) -> Line:
        return Line(key, self.model, self.responses, {k: self.tokens.get(k, 0) for k in KINDS}, self.usd,
                    self.unheard, self.tr_usd, self.unpriced)


@dataclass(frozen=True)
class CostReport:
    total: Line
    sessions: tuple[Line, ...]
    turns: tuple[Line, ...]
    responses: tuple[Line, ...]
    unpriced_models: tuple[str, ...]
    prices: Prices
    source: str | None = None
    problems: tuple[str, ...] = ()
    headline: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "rtreplay.cost", "version": 1, "source": self.source, "headline": self.headline,
            "prices": {"file": self.prices.source, "taken": self.prices.taken},
            "total": self.total.as_json(()),
            "sessions": [s.as_json(("session_id",)) for s in self.sessions],
            "turns": [t.as_json(("session_id", "turn")) for t in self.turns],
            "responses": [r.as_json(("session_id", "response_id", "turn")) for r in self.responses],
            "unpriced_models": list(self.unpriced_models),
            "problems": list(self.problems),
        }

    def tables(self) -> list[Table]:
        def row(s: Line, label: Any) -> tuple[Any, ...]:
            t = s.tokens
            return (label, s.responses, t["text_input"] + t["text_cached_input"] + t["text_output"],
                    t["audio_input"] + t["audio_cached_input"] + t["audio_output"], money(s.usd),
                    money(s.unheard_usd), money(s.transcription_usd))

        cols = ("session", "resp", "text tok", "audio tok", "cost", "unheard", "transcr.")
        raw_cols = ("session_id", "model", "responses", *KINDS, "usd", "unheard_audio_usd", "transcription_usd")
        sess = tuple(row(s, short(s.key[0], 18)) for s in self.sessions[:LIST_LIMIT])
        raw = tuple((s.key[0], s.model, s.responses, *(s.tokens[k] for k in KINDS), s.usd, s.unheard_usd,
                     s.transcription_usd) for s in self.sessions)
        kinds = tuple((k.replace("_", " "), self.total.tokens[k]) for k in KINDS)
        note = f"{len(self.sessions) - LIST_LIMIT} more sessions in --format json/csv" \
            if len(self.sessions) > LIST_LIMIT else ""
        return [
            Table("Cost by session (USD)", cols, (*sess, row(self.total, "all")), note, raw=raw,
                  raw_columns=raw_cols),
            Table("Tokens by kind", ("token kind", "tokens"), kinds,
                  f"models: {', '.join(sorted({str(s.model) for s in self.sessions}))}; prices: {self.prices.source} "
                  f"table, taken {self.prices.taken}"),
        ]


def _headline(total: Line, sessions: Sequence[Line], unpriced: Sequence[str]) -> str:
    if total.responses == 0:
        return "No responses with usage to price."
    priced = [s for s in sessions if s.usd is not None]
    text = (f"{len(sessions)} sessions cost {money(total.usd)} over {total.responses} responses"
            f" (median session {money(sorted(s.usd for s in priced)[len(priced) // 2]) if priced else 'n/a'})"
            f"; {money(total.unheard_usd)} of it paid for audio the caller never heard")
    if unpriced:
        text += f"; no price for {', '.join(unpriced)} (not counted)"
    return text + "."


class Fold:
    """The report folded session by session: sums per session and per turn, and one `Line` per response (the
    JSON lists each response: this part grows with the archive, docs/report.md)."""

    def __init__(self, prices: Prices | None = None) -> None:
        self.prices = prices or load_prices()
        self.total = _Acc()
        self.sessions: dict[str, _Acc] = {}
        self.turns: dict[tuple[str, int], _Acc] = {}
        self.responses: list[Line] = []
        self.unpriced: set[str] = set()

    def add(self, f: SessionFacts) -> None:
        prices, total, turns, unpriced = self.prices, self.total, self.turns, self.unpriced
        s = self.sessions[f.session_id] = _Acc()
        s.model = f.model
        mine: set[int] = set()  # this session's turns with a response
        unheard_ms: dict[str, float] = defaultdict(float)
        for t in f.truncations:
            if t.valid and t.response_id is not None:
                unheard_ms[t.response_id] += t.unheard_ms
        for r in f.responses.values():
            if r.usage is None:
                continue
            tokens = tokens_of(r.usage)
            entry = prices.of(r.model)
            usd = price_tokens(tokens, entry)
            unheard = 0.0
            if usd is not None and r.audio_ms > 0 and unheard_ms.get(r.response_id):
                per = entry.get("audio_output", 0) if entry else 0  # type: ignore[union-attr]
                unheard = tokens["audio_output"] * per / 1e6 * min(1.0, unheard_ms[r.response_id] / r.audio_ms)
            if usd is None:
                unpriced.add(str(r.model))
            turn = turns.setdefault((f.session_id, r.turn), _Acc())
            mine.add(r.turn)
            for k, n in tokens.items():  # into the turn only; the session and total add the turns' below
                turn.tokens[k] += n
            for acc in (total, s, turn):
                acc.model = acc.model or r.model
                acc.responses += 1
                acc.usd += usd or 0.0
                acc.unheard += unheard
                acc.unpriced += usd is None
            self.responses.append(Line((f.session_id, r.response_id, r.turn), r.model, 1, tokens, usd, unheard,
                                       None, int(usd is None)))
        for k in KINDS:  # the session's token sums, from its turns' (integers: the order does not matter)
            n = sum(turns[(f.session_id, t)].tokens.get(k, 0) for t in mine)
            if n:
                s.tokens[k] += n
                total.tokens[k] += n
        for tr in f.transcriptions:
            _, _, usd = transcription_cost(tr.usage, prices.of(tr.model))
            if usd is None:
                unpriced.add(str(tr.model))
            turn = turns.setdefault((f.session_id, tr.turn), _Acc())
            for acc in (total, s, turn):
                acc.tr_usd += usd or 0.0
                acc.usd += usd or 0.0
                acc.unpriced += usd is None

    def report(self, source: str | None = None, problems: Sequence[str] = ()) -> CostReport:
        lines = tuple(sorted((a.line((sid,)) for sid, a in self.sessions.items()), key=lambda x: x.key))
        total, unpriced = self.total.line(()), tuple(sorted(self.unpriced))
        self.responses.sort(key=lambda x: (x.key[0], x.key[2], x.key[1]))
        return CostReport(total, lines, tuple(a.line(k) for k, a in sorted(self.turns.items())),
                          tuple(self.responses), unpriced, self.prices, source, tuple(problems),
                          _headline(total, lines, unpriced))


def build(facts: Iterable[SessionFacts], prices: Prices | None = None, source: str | None = None,
          problems: Sequence[str] = ()) -> CostReport:
    fold = Fold(prices)
    for f in facts:
        fold.add(f)
    return fold.report(source, problems)
