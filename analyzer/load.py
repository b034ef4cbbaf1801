"""Reading archives for analysis: a polars LazyFrame over every file, sessions one at a time, and the rows
of a session as reducer `Event`s.

Built on recorder/archive.py (file discovery, journals, schema upgrades, problems reported by file name);
nothing here re-implements those. Files at the current schema version are scanned lazily by polars (so
filters and column selections reach the Parquet reader); older files and open journals are read through
`recorder.archive.read_file`, which upgrades them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recorder import archive
from recorder.archive import ArchiveError, ArchiveProblem
from recorder.schema import EVENT_SCHEMA, SCHEMA_VERSION, SchemaVersionError, version_of

from analyzer.state import Event


@dataclass
class Scan:
    """A lazy view of an archive's events and the files that could not be read (by name)."""

    frame: pl.LazyFrame
    problems: list[ArchiveProblem] = field(default_factory=list)


def scan(path: str | Path) -> Scan:
    """All events under `path` (a directory or one file) as a LazyFrame; unreadable files are listed."""
    files, problems = archive.archive_files(Path(path))
    current: list[str] = []
    others: list[pl.LazyFrame] = []
    for f in files:
        try:
            if f.suffix == archive.PARQUET_SUFFIX and version_of(pq.read_schema(f)) == SCHEMA_VERSION:
                current.append(str(f))
                continue
            table, note = archive.read_file(f)
        except (ArchiveError, SchemaVersionError, pa.ArrowException, OSError) as exc:
            problems.append(ArchiveProblem(str(f), str(exc).removeprefix(f"{f}: ")))
            continue
        if note:
            problems.append(ArchiveProblem(str(f), note))
        others.append(pl.from_arrow(table).lazy())  # type: ignore[union-attr]
    frames = ([pl.scan_parquet(current, hive_partitioning=False)] if current else []) + others
    if not frames:
        frames = [pl.from_arrow(EVENT_SCHEMA.empty_table()).lazy()]  # type: ignore[union-attr]
    return Scan(pl.concat(frames, how="vertical"), problems)


def events(path: str | Path) -> pl.LazyFrame:
    """The archive's events as a polars LazyFrame (for notebooks). Problems: see `scan`."""
    return scan(path).frame


def iter_sessions(path: str | Path, sessions: Iterable[str] | None = None,
                  problems: list[ArchiveProblem] | None = None) -> Iterator[tuple[str, pa.Table]]:
    """(session_id, events sorted by seq) per session, one file's worth of memory at a time.

    Parts of one session (`<id>.part-NNNN.parquet`) sort next to each other and are joined. Problems are
    appended to `problems` when given.
    """
    wanted = set(sessions) if sessions is not None else None
    pending_sid: str | None = None
    pending: list[pa.Table] = []
    for path_, table, problem in archive.iter_archive(Path(path)):
        if problem is not None and problems is not None:
            problems.append(problem)
        if table is None or table.num_rows == 0:
            continue
        sids = pc.unique(table["session_id"]).to_pylist()
        for sid in sids:
            if wanted is not None and sid not in wanted:
                continue
            part = table if len(sids) == 1 else table.filter(pc.equal(table["session_id"], sid))
            if sid != pending_sid and pending:
                yield pending_sid, _sorted(pending)  # type: ignore[misc]
                pending = []
            pending_sid = sid
            pending.append(part)
    if pending:
        yield pending_sid, _sorted(pending)  # type: ignore[misc]


def _sorted(tables: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(tables)
    seqs = table.column("seq").to_numpy()
    if len(seqs) < 2 or bool((np.diff(seqs) > 0).all()):
        return table  # already in order (the usual case): sorting would copy every audio byte
    return table.sort_by("seq")


def read_session(path: str | Path, session_id: str, problems: list[ArchiveProblem] | None = None) -> pa.Table:
    """One session's events sorted by seq; `ArchiveError` when the archive has no such session.

    A file read only in part (a journal cut short) is appended to `problems` when given."""
    root = Path(path)
    files, _ = archive.archive_files(root)
    mine = [f for f in files if f.name.startswith(session_id)] if root.is_dir() else files
    tables = []
    for f in mine:
        table, note = archive.read_file(f)
        if note and problems is not None:
            problems.append(ArchiveProblem(str(f), note))
        tables.append(table.filter(pc.equal(table["session_id"], session_id)))
    if not tables or sum(t.num_rows for t in tables) == 0:  # names may not follow the layout: look inside
        tables = [archive.read_archive(root, sessions=[session_id]).table]
    table = _sorted(tables)
    if table.num_rows == 0:
        raise ArchiveError(f"{path}: no session {session_id!r} (list them with `rtreplay sessions {path}`)")
    return table


APPEND = "input_audio_buffer.append"


def session_events(table: pa.Table) -> list[Event]:
    """The rows of one session (sorted by seq) as reducer events.

    Runs of consecutive `input_audio_buffer.append` rows with their audio cut out (the bulk of a voice
    session) become one event each (`Event.run`; its audio is one view of the run's bytes, which are
    contiguous in the column). Audio is handed over as read-only memoryviews into the table's `audio`
    buffer: no copy per row.
    """
    table = table.combine_chunks()
    n = table.num_rows
    if n == 0:
        return []
    audio = table.column("audio").chunk(0)
    seqs = table.column("seq").chunk(0).to_numpy()
    is_app = pc.and_(pc.equal(table.column("type"), APPEND), pc.is_valid(audio)).to_numpy(zero_copy_only=False)
    if n > 1 and not bool((np.diff(seqs) > 0).all()):
        is_app[:] = False  # duplicate or unsorted seqs: every row goes through `apply` (which flags them)
    offsets, data = _audio_buffers(audio)
    others = np.flatnonzero(~is_app)
    slim = table.drop_columns(["audio"])
    sub = slim.take(pa.array(others)) if len(others) < n else slim
    col = {name: sub.column(name).to_pylist() for name in
           ("seq", "type", "direction", "payload", "item_id", "response_id", "mono_ns", "audio_at")}
    ts = sub.column("ts").cast(pa.int64()).to_pylist()
    valid = audio.is_valid().to_numpy(zero_copy_only=False)[others].tolist()
    starts_ = [offsets[i] for i in others.tolist()]
    ends_ = [offsets[i + 1] for i in others.tolist()]
    views = [data[a:b] if v else None for a, b, v in zip(starts_, ends_, valid)]
    single = [Event(s, t, d, p, a, it, r, m, u, audio_at=at)
              for s, t, d, p, a, it, r, m, u, at in zip(col["seq"], col["type"], col["direction"], col["payload"],
                                                         views, col["item_id"], col["response_id"], col["mono_ns"],
                                                         ts, col["audio_at"])]
    # Run boundaries: starts where an append follows a non-append, ends where it stops.
    edges = np.diff(np.concatenate(([0], is_app.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if len(starts) == 0:
        return single
    mono = table.column("mono_ns").chunk(0).to_numpy()
    ts_all = table.column("ts").chunk(0).cast(pa.int64()).to_numpy()
    payload0 = table.column("payload").chunk(0)
    runs = [Event(int(seqs[b - 1]), APPEND, "client", payload0[a].as_py(), data[offsets[a]:offsets[b]],
                  mono_ns=int(mono[b - 1]), ts_us=int(ts_all[b - 1]),
                  run=(seqs[a:b], np.asarray(offsets[a:b + 1]) - offsets[a]))
            for a, b in zip(starts.tolist(), ends.tolist())]
    # Merge by row position (both lists are in order).
    out: list[Event] = []
    positions = others.tolist()
    i = 0
    for a, ev in zip(starts.tolist(), runs):
        while i < len(positions) and positions[i] < a:
            out.append(single[i])
            i += 1
        out.append(ev)
    out.extend(single[i:])
    return out


def _audio_buffers(arr: pa.Array) -> tuple[list[int], memoryview]:
    """The `audio` column's offsets (per row, from its start) and data buffer as a memoryview."""
    n = len(arr)
    bufs = arr.buffers()
    if bufs[1] is None:
        return [0] * (n + 1), memoryview(b"")
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + n + 1].tolist()
    return offsets, memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
