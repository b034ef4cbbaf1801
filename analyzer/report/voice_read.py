"""Reading an archive for the voice reports: polars queries per batch of whole sessions, then
`voice_facts.walk` per session, then the transcripts of the items barge-ins cut (see voice_facts' docstring).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import orjson
import polars as pl

from rtreplay.analyzer.report.voice_facts import (
    APPEND, AUDIO_DELTAS, COLUMNS, CONTROL_TYPES, DELTAS, JSON_FIELDS, TRANSCRIPT_DELTAS, walk,
)
from rtreplay.analyzer.report.voice_values import BargeIn, ItemAudio, SessionFacts

BATCH_SESSIONS = 8  # sessions read per batch: memory is bounded by this many sessions' control rows


def _queries(lazy: pl.LazyFrame) -> list[pl.LazyFrame]:
    control = (lazy.filter(pl.col("type").is_in(CONTROL_TYPES)
                           | ((pl.col("direction") == "client") & (pl.col("type") != APPEND)))
               .select(*(pl.col(c) for c in COLUMNS),
                       # null payload elsewhere: json_path_match skips nulls (a when/then would match every row)
                       *(pl.when(pl.col("type") == kind).then(pl.col("payload")).str.json_path_match(path)
                         .alias(f"j{i}") for i, (kind, path) in enumerate(JSON_FIELDS)))
               .with_columns(pl.col("ts").dt.epoch("us"))
               .sort(["session_id", "seq"]))
    is_audio = pl.col("type").is_in(AUDIO_DELTAS)
    items = (lazy.filter((pl.col("direction") == "server") & pl.col("type").is_in(DELTAS))
             .group_by(["session_id", "item_id"])
             .agg(pl.col("response_id").sort_by("seq").first(),
                  pl.col("seq").min().alias("first_seq"), pl.col("mono_ns").sort_by("seq").first().alias("first_mono"),
                  pl.col("seq").filter(is_audio).min().alias("audio_seq"),
                  pl.col("mono_ns").sort_by("seq").filter(is_audio.sort_by(pl.col("seq"))).first().alias("audio_mono"),
                  pl.col("audio").bin.size().filter(is_audio).sum().alias("audio_bytes")))
    starts = lazy.group_by("session_id").agg(pl.col("ts").sort_by("seq").first().dt.epoch("us").alias("start"),
                                             pl.col("mono_ns").sort_by("seq").first().alias("start_mono"))
    return [control, items, starts]


def read_frame(lazy: pl.LazyFrame, sessions: Sequence[str] | None = None) -> list[SessionFacts]:
    """The facts of every session in `lazy` (a frame of archive events)."""
    if sessions:
        lazy = lazy.filter(pl.col("session_id").is_in(list(sessions)))
    # One query at a time: together they decode their columns at once (twice the peak memory) for no gain.
    control, items, starts = (q.collect() for q in _queries(lazy))
    audio: dict[str, dict[str | None, ItemAudio]] = defaultdict(dict)
    for sid, iid, rid, fs, fm, aseq, amono, abytes in items.iter_rows():
        audio[sid][iid] = ItemAudio(rid, fs, fm, aseq, amono, int(abytes or 0))
    start = {sid: (ts, mono) for sid, ts, mono in starts.iter_rows()}
    out = []
    for (sid,), part in control.group_by(["session_id"], maintain_order=True):
        facts = walk(sid, part.iter_rows(), audio.get(sid, {}), start.get(sid, (0, 0)))  # type: ignore[arg-type]
        out.append(facts)
    _transcripts(lazy, out)
    return out


def iter_facts(path, sessions: Sequence[str] | None = None,  # type: ignore[no-untyped-def]
               problems: list[str] | None = None) -> Iterator[SessionFacts]:
    """The facts of the archive at `path` (a location or an opened `recorder.store.Archive`), session by session,
    read a batch of whole sessions at a time (each file once): what is held is one batch, not the archive. The
    problems met are appended to `problems` as they are met."""
    from rtreplay.analyzer.state import load
    from rtreplay.analyzer.state.reduce import collector_paused
    from rtreplay.recorder.store import Archive

    problems = problems if problems is not None else []
    arc = Archive.open(path)
    if sessions:
        arc = arc.only(sessions)
    problems += [str(p) for p in arc.problems]
    groups = list(arc.sessions.values())  # the parts of one session always in one batch
    for start in range(0, len(groups), BATCH_SESSIONS):
        read: list = []
        with collector_paused():
            frames = [fr for g in groups[start:start + BATCH_SESSIONS] for f in g
                      if (fr := load.file_frame(arc, f, read)) is not None]
            problems += [str(p) for p in read]
            batch = read_frame(pl.concat(frames, how="vertical"), sessions) if frames else []
        yield from batch


def read_archive(path, sessions: Sequence[str] | None = None) -> tuple[list[SessionFacts], list[str]]:  # type: ignore[no-untyped-def]
    """All the facts of the archive at `path` at once (`iter_facts` as a list), and the problems met."""
    problems: list[str] = []
    facts = list(iter_facts(path, sessions, problems))
    return facts, problems


def _transcripts(lazy: pl.LazyFrame, facts: list[SessionFacts]) -> None:
    """Transcript as generated and as heard for each barge-in's cut item (docs/definitions.md, "Interruptions";
    SQL: heard_transcripts.sql): each transcript delta with the item's audio bytes streamed before it."""
    wanted: dict[tuple[str, str], list[BargeIn]] = defaultdict(list)
    for f in facts:
        for b in f.barge_ins:
            if b.item_id is not None:
                wanted[(f.session_id, b.item_id)].append(b)
    if not wanted:
        return
    rows = (lazy.filter((pl.col("direction") == "server") & pl.col("type").is_in(AUDIO_DELTAS + TRANSCRIPT_DELTAS)
                        & pl.col("session_id").is_in(list({s for s, _ in wanted}))
                        & pl.col("item_id").is_in(list({i for _, i in wanted})))
            .select("session_id", "item_id", "seq", "type", pl.col("audio").bin.size().alias("n"),
                    pl.when(pl.col("type").is_in(TRANSCRIPT_DELTAS)).then(pl.col("payload")).alias("payload"))
            .sort(["session_id", "item_id", "seq"]).collect())
    deltas: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)  # (audio bytes before it, delta)
    streamed: dict[tuple[str, str], int] = defaultdict(int)
    for sid, iid, _seq, kind, n, payload in rows.iter_rows():
        key = (sid, iid)
        if key not in wanted:
            continue
        if kind in AUDIO_DELTAS:
            streamed[key] += n or 0
            continue
        try:
            delta = orjson.loads(payload).get("delta")
        except (orjson.JSONDecodeError, AttributeError):
            delta = None
        if isinstance(delta, str):
            deltas[key].append((streamed[key], delta))
    for key, found in deltas.items():
        for b in wanted[key]:
            b.generated = "".join(d for _, d in found)
            # with no audio deltas (WebRTC/SIP) nothing places a word in the audio: unknown
            if b.audio_end_ms is not None and b.generated_ms is not None:
                b.heard = "".join(d for before, d in found if before < b.audio_end_ms * b.bpm)
