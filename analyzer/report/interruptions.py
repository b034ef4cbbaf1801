"""The interruptions report: barge-ins, what they cut, and whether the app's truncate was right
(docs/definitions.md, "Interruptions").

A barge-in is a server `input_audio_buffer.speech_started` while a response that already streamed audio had
no `response.done` yet, or (WebRTC/SIP, no audio deltas) while a response's output audio buffer was playing
(`output_audio_buffer.started`, not yet `.stopped`/`.cleared`); there the server cuts it itself
(`output_audio_buffer.cleared`, then `conversation.item.truncated`). The cut item is that response's audio item
that started last before it (WebRTC/SIP: the item whose deltas started last). A client
`conversation.item.truncate` is invalid when its `audio_end_ms` is beyond the audio generated for the item
(the server's "Audio content of …ms is already shorter than …ms"), or names an item with no audio. A
barge-in with no truncate of the cut item after it leaves the model believing it said what was never heard.
The transcript as heard keeps the transcript deltas streamed before `audio_end_ms` of the item's audio.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rtreplay.analyzer.report.voice_values import BargeIn, SessionFacts, Truncation, utc
from rtreplay.analyzer.report.voice_render import Table, ms, short

LIST_LIMIT = 30  # rows of barge-ins / truncations shown by the terminal and Markdown (JSON has all)


@dataclass(frozen=True)
class SessionCount:
    session_id: str
    turns: int
    barge_ins: int
    truncated: int  # barge-ins followed by a truncate of the cut item
    truncations: int
    invalid: int


@dataclass(frozen=True)
class InterruptionsReport:
    sessions: tuple[SessionCount, ...]
    barge_ins: tuple[tuple[str, BargeIn], ...]
    truncations: tuple[tuple[str, Truncation], ...]
    source: str | None = None
    problems: tuple[str, ...] = ()
    headline: str = ""

    def totals(self) -> dict[str, int]:
        return {
            "turns": sum(s.turns for s in self.sessions),
            "barge_ins": len(self.barge_ins),
            "barge_ins_truncated": sum(1 for _, b in self.barge_ins if b.truncate_seq is not None),
            "barge_ins_not_truncated": sum(1 for _, b in self.barge_ins if b.truncate_seq is None),
            "truncations": len(self.truncations),
            "invalid_truncations": sum(1 for _, t in self.truncations if not t.valid),
            "truncate_errors": sum(1 for _, t in self.truncations if t.answer == "error"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "rtreplay.interruptions", "version": 1, "source": self.source, "headline": self.headline,
            "totals": self.totals(),
            "sessions": [{"session_id": s.session_id, "turns": s.turns, "barge_ins": s.barge_ins,
                          "truncated": s.truncated, "truncations": s.truncations, "invalid_truncations": s.invalid}
                         for s in self.sessions],
            "barge_ins": [{"session_id": sid, "seq": b.seq, "ts": utc(b.ts_us).isoformat(), "minute": b.minute,
                           "response_id": b.response_id, "item_id": b.item_id, "generated_ms": b.generated_ms,
                           "source": b.source, "cleared_seq": b.cleared_seq, "truncate_seq": b.truncate_seq,
                           "truncated_by": b.truncated_by, "audio_end_ms": b.audio_end_ms, "valid": b.valid,
                           "transcript_generated": b.generated, "transcript_heard": b.heard}
                          for sid, b in self.barge_ins],
            "truncations": [{"session_id": sid, "seq": t.seq, "ts": utc(t.ts_us).isoformat(), "item_id": t.item_id,
                             "response_id": t.response_id, "audio_end_ms": t.audio_end_ms,
                             "generated_ms": t.generated_ms, "valid": t.valid, "answer": t.answer,
                             "error_code": t.error_code, "unheard_ms": t.unheard_ms}
                            for sid, t in self.truncations],
            "problems": list(self.problems),
        }

    def tables(self) -> list[Table]:
        sess = tuple((s.session_id, s.turns, s.barge_ins, s.truncated, s.barge_ins - s.truncated, s.truncations,
                      s.invalid) for s in self.sessions)
        sess_short = tuple((short(r[0], 16), *r[1:]) for r in sess)
        bi = tuple((short(sid, 16), b.seq, ms(b.generated_ms), b.audio_end_ms,
                    "none" if b.truncate_seq is None else "server" if b.truncated_by == "server" else
                    ("ok" if b.valid else "INVALID"),
                    _heard(b)) for sid, b in self.barge_ins[:LIST_LIMIT])
        tr = tuple((short(sid, 16), t.seq, t.audio_end_ms, ms(t.generated_ms),
                    "ok" if t.valid else "INVALID", t.answer if t.error_code is None else f"error {t.error_code}")
                   for sid, t in self.truncations[:LIST_LIMIT])

        def more(n: int) -> str:
            return f"{n - LIST_LIMIT} more in --format json" if n > LIST_LIMIT else ""

        return [
            Table("Interruptions by session", ("session", "turns", "barge-ins", "trunc.", "untrunc.",
                                               "truncates", "invalid"), sess_short, raw=sess,
                  raw_columns=("session_id", "turns", "barge_ins", "truncated", "not_truncated", "truncations",
                               "invalid_truncations")),
            Table("Barge-ins (the caller spoke over assistant audio)",
                  ("session", "seq", "gen ms", "end ms", "truncate", "heard"), bi, more(len(self.barge_ins))),
            Table("Truncations (the app's conversation.item.truncate)",
                  ("session", "seq", "end ms", "gen ms", "valid", "answer"), tr,
                  more(len(self.truncations))),
        ]


def _heard(b: BargeIn) -> str:
    if b.heard is None:
        return ""
    text = b.heard.strip()
    text = text if len(text) <= 24 else "…" + text[-23:]
    return f"{text!r}"


def _headline(t: dict[str, int]) -> str:
    if t["barge_ins"] == 0 and t["truncations"] == 0:
        return f"No barge-ins and no truncations in {t['turns']} spoken turns."
    text = (f"{t['barge_ins']} barge-ins in {t['turns']} spoken turns: {t['barge_ins_truncated']} truncated, "
            f"{t['barge_ins_not_truncated']} never truncated (the model believes it said what was not heard)")
    return text + (f"; {t['invalid_truncations']} of {t['truncations']} truncations invalid "
                   f"(audio_end_ms beyond the audio generated), {t['truncate_errors']} answered by an error.")


class Fold:
    """The report folded session by session: a count row per session; every barge-in and truncation is kept
    (the JSON lists each)."""

    def __init__(self) -> None:
        self.sessions: list[SessionCount] = []
        self.barge_ins: list[tuple[str, BargeIn]] = []
        self.truncations: list[tuple[str, Truncation]] = []

    def add(self, f: SessionFacts) -> None:
        self.sessions.append(SessionCount(f.session_id, f.turns, len(f.barge_ins),
                                          sum(1 for b in f.barge_ins if b.truncate_seq is not None),
                                          len(f.truncations), sum(1 for t in f.truncations if not t.valid)))
        self.barge_ins += [(f.session_id, b) for b in f.barge_ins]
        self.truncations += [(f.session_id, t) for t in f.truncations]

    def report(self, source: str | None = None, problems: Sequence[str] = ()) -> InterruptionsReport:
        self.sessions.sort(key=lambda s: s.session_id)
        self.barge_ins.sort(key=lambda x: (x[0], x[1].seq))
        self.truncations.sort(key=lambda x: (x[0], x[1].seq))
        report = InterruptionsReport(tuple(self.sessions), tuple(self.barge_ins), tuple(self.truncations), source,
                                     tuple(problems))
        return InterruptionsReport(report.sessions, report.barge_ins, report.truncations, source, tuple(problems),
                                   _headline(report.totals()))


def build(facts: Iterable[SessionFacts], source: str | None = None,
          problems: Sequence[str] = ()) -> InterruptionsReport:
    fold = Fold()
    for f in facts:
        fold.add(f)
    return fold.report(source, problems)
