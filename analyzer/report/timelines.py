"""Short excerpts of the events around chosen requests, for the HTML report's timeline section.

Only the files of the sessions asked for are opened (the opened archive's listing says which), and from Parquet only the rows in each request's seq
window are read (row-group statistics on `seq` skip the rest), so the cost follows the number of excerpts,
not the size of the archive.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtreplay.analyzer.state.request import Request
from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.store import Archive, ArchiveFile

COLUMNS = ["session_id", "seq", "ts", "direction", "type", "payload"]


@dataclass(frozen=True)
class TimelineEvent:
    """One archived event, payload cut to an excerpt; or, with `gap` > 0, a marker for events left out."""

    seq: int
    ts: dt.datetime
    direction: str
    type: str
    payload: str
    gap: int = 0


def _window(r: Request, before: int, after: int) -> tuple[int, int]:
    last = max(s for s in (r.seq, r.answer_seq, r.done_seq) if s is not None)
    return r.seq - before, last + after


def _read_rows(arc: Archive, f: ArchiveFile, lo: int, hi: int) -> pa.Table:
    if not f.is_journal:
        try:
            return pq.read_table(f.path, filesystem=arc.fs, columns=COLUMNS,
                                 filters=[("seq", ">=", lo), ("seq", "<=", hi)])
        except (pa.ArrowException, OSError) as exc:
            raise ArchiveError(f"{f}: {exc}") from exc
    table, _ = arc.read(f)
    return table.select(COLUMNS).filter(pc.and_(pc.greater_equal(table["seq"], lo), pc.less_equal(table["seq"], hi)))


def load_timelines(
    source: str | Path | Archive, requests: Sequence[Request], *, limit: int = 50, before: int = 3, after: int = 2,
    max_events: int = 24, excerpt: int = 300,
) -> dict[str, list[TimelineEvent]]:
    """Event excerpts for the first `limit` requests, keyed by request id.

    Each excerpt runs from `before` events ahead of the request to `after` events past its answer or
    `response.done`; longer windows keep their first and last `max_events // 2` events around a gap marker.
    Payloads are cut to `excerpt` characters, except the request's own and its answer's. Files that cannot
    be read are skipped (the report lists them already).
    """
    chosen = list(requests)[:limit]
    by_session: dict[str, list[Request]] = defaultdict(list)
    for r in chosen:
        by_session[r.session_id].append(r)
    arc = Archive.open(source)
    rows: dict[str, list[dict]] = defaultdict(list)
    for sid, wanted in by_session.items():
        windows = [_window(r, before, after) for r in wanted]
        for f in arc.files_of(sid):
            try:
                table = _read_rows(arc, f, min(w[0] for w in windows), max(w[1] for w in windows))
            except ArchiveError:
                continue
            rows[sid] += table.filter(pc.equal(table["session_id"], sid)).to_pylist()
    out: dict[str, list[TimelineEvent]] = {}
    for r in chosen:
        lo, hi = _window(r, before, after)
        keep = {r.seq, r.answer_seq, r.done_seq}
        events = sorted((e for e in rows.get(r.session_id, ()) if lo <= e["seq"] <= hi), key=lambda e: e["seq"])
        timeline = [TimelineEvent(e["seq"], e["ts"], e["direction"], e["type"],
                                  _cut(e["payload"], 4000 if e["seq"] in keep else excerpt)) for e in events]
        if len(timeline) > max_events:
            half = max_events // 2
            gap = TimelineEvent(0, timeline[half].ts, "", "", "", gap=len(timeline) - 2 * half)
            timeline = timeline[:half] + [gap] + timeline[-half:]
        out[r.request_id] = timeline
    return out


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"… ({len(text) - n} more characters)"
