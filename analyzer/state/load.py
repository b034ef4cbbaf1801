"""Reading an opened archive for analysis: a polars LazyFrame over every file, one file's frame, sessions
one at a time, and one session's rows (as reducer `Event`s through `rows.session_events`).

Built on rtreplay.recorder.store.Archive (the files, listed once; schema upgrades; problems reported by file
name); nothing here lists an archive again. Every function takes an opened `Archive` (or a path, which it
opens). Files at the current schema version are scanned by polars (so filters and column selections reach
the Parquet reader); older files and open journals are read through the archive, which upgrades them.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rtreplay.analyzer.state.rows import session_events  # noqa: F401  (re-exported: readers load sessions here)
from rtreplay.recorder import archive as archive_io
from rtreplay.recorder.archive import ArchiveError, ArchiveProblem
from rtreplay.recorder.schema import EVENT_SCHEMA, SCHEMA_VERSION, SchemaVersionError, version_of
from rtreplay.recorder.store import Archive, ArchiveFile, parquet_version, read_bytes

T = TypeVar("T")
Source = str | Path | Archive


@dataclass
class Scan:
    """A lazy view of an archive's events and the files that could not be read (by name)."""

    frame: pl.LazyFrame
    problems: list[ArchiveProblem] = field(default_factory=list)


def _readable(source: str | io.BytesIO) -> bool:
    try:
        pl.read_parquet(source, hive_partitioning=False)
        return True
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return False


DAMAGED = "not a readable rtreplay Parquet file (damaged data pages)"


def scan(source: Source, verify: bool = False) -> Scan:
    """All events of an archive as a LazyFrame; unreadable files are listed.

    Current-version Parquet files are checked by their footer only (columns, timestamp statistics) and read
    lazily; with `verify` each is also read whole once, so that damage inside one (flipped bytes) is named
    rather than failing the whole frame. `collect` verifies only when a plain collect fails.

    Raises `ArchiveError` when there are archive files but none could be read.
    """
    arc = Archive.open(source)
    problems = list(arc.problems)
    current: list[str] = []
    others: list[pl.LazyFrame] = []
    local = isinstance(arc.fs, pafs.LocalFileSystem)
    for f in arc.files:
        try:
            if not f.is_journal and local and version_of(pq.read_schema(f.path)) == SCHEMA_VERSION:
                problem = archive_io.footer_problem(f.path)
                if problem is None and verify and not _readable(f.path):
                    problem = DAMAGED
                if problem is not None:
                    problems.append(ArchiveProblem(str(f), problem))
                else:
                    current.append(f.path)
                continue
            table, note = arc.read(f)
        except (ArchiveError, SchemaVersionError, pa.ArrowException, OSError, ValueError) as exc:
            problems.append(ArchiveProblem(str(f), str(exc).removeprefix(f"{f}: ")))
            continue
        if note:
            problems.append(ArchiveProblem(str(f), note))
        others.append(pl.from_arrow(table).lazy())  # type: ignore[union-attr]
    frames = ([pl.scan_parquet(current, hive_partitioning=False)] if current else []) + others
    if arc.files and not frames:  # an empty table would read as "no requests": say nothing could be read
        last = problems[-1]
        raise ArchiveError(f"{arc.location}: nothing could be read ({last.message})" if arc.is_file
                           else f"{arc.location}: nothing could be read ({last})")
    if not frames:
        frames = [pl.from_arrow(EVENT_SCHEMA.empty_table()).lazy()]  # type: ignore[union-attr]
    return Scan(pl.concat(frames, how="vertical"), problems)


def file_frame(arc: Archive, f: ArchiveFile, problems: list[ArchiveProblem],
               verify: bool = False) -> pl.LazyFrame | None:
    """One file's events as a LazyFrame, the file opened and read once (None and a problem when it cannot
    be read). A file at the current version is scanned by polars from its bytes, so filters and column
    selections still reach the Parquet reader; its footer is checked as in `scan`, its pages with `verify`."""
    try:
        buf = arc.read_buffer(f)
        if not f.is_journal and parquet_version(f, buf) == SCHEMA_VERSION:
            problem = archive_io.footer_problem(pa.BufferReader(buf))
            if problem is None and verify and not _readable(io.BytesIO(buf)):
                problem = DAMAGED
            if problem is not None:
                problems.append(ArchiveProblem(str(f), problem))
                return None
            return pl.scan_parquet(io.BytesIO(buf), hive_partitioning=False)
        table, note = read_bytes(f, buf)
    except ArchiveError as exc:
        problems.append(ArchiveProblem(str(f), str(exc).removeprefix(f"{f}: ")))
        return None
    if note:
        problems.append(ArchiveProblem(str(f), note))
    return pl.from_arrow(table).lazy()  # type: ignore[union-attr]


def collect(source: Source, query: Callable[[pl.LazyFrame], pl.LazyFrame],
            problems: list[ArchiveProblem]) -> pl.DataFrame:
    """`query` over the archive's events, collected; a file that fails the read is named in `problems` and
    left out (the archive is scanned again, reading each file whole, only when the first attempt fails)."""
    sc = scan(source)
    try:
        frame = query(sc.frame).collect()
    except (pl.exceptions.PolarsError, OSError):
        sc = scan(source, verify=True)
        frame = query(sc.frame).collect()
    problems.extend(sc.problems)
    return frame


def events(source: Source) -> pl.LazyFrame:
    """The archive's events as a polars LazyFrame (for notebooks). Problems: see `scan`."""
    return scan(source).frame


def iter_sessions(source: Source, sessions: Iterable[str] | None = None,
                  problems: list[ArchiveProblem] | None = None) -> Iterator[tuple[str, pa.Table]]:
    """(session_id, events sorted by seq) per session, two files' worth of memory at a time.

    Parts of one session (`<id>.part-NNNN.parquet`) sort next to each other and are joined. Problems are
    appended to `problems` when given.
    """
    wanted = set(sessions) if sessions is not None else None
    pending_sid: str | None = None
    pending: list[pa.Table] = []
    for path_, table, problem in _read_ahead(Archive.open(source).iter()):
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


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one read in a thread while the caller works on the current one (Parquet reading
    releases the GIL): reading overlaps folding. One more file is held in memory."""
    with ThreadPoolExecutor(1) as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


def _sorted(tables: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(tables)
    seqs = table.column("seq").to_numpy()
    if len(seqs) < 2 or bool((np.diff(seqs) > 0).all()):
        return table  # already in order (the usual case): sorting would copy every audio byte
    return table.sort_by("seq")


def read_session(source: Source, session_id: str, problems: list[ArchiveProblem] | None = None) -> pa.Table:
    """One session's events sorted by seq; `ArchiveError` when the archive has no such session.

    Only the files named after the session are read (the archive's listing says which). A file read only
    in part (a journal cut short) is appended to `problems` when given."""
    arc = Archive.open(source)
    mine = arc.files_of(session_id)
    tables = []
    for f in mine:
        table, note = arc.read(f)
        if note and problems is not None:
            problems.append(ArchiveProblem(str(f), note))
        tables.append(table.filter(pc.equal(table["session_id"], session_id)))
    if not tables or sum(t.num_rows for t in tables) == 0:  # names may not follow the layout: look inside
        tables = [archive_io.read_archive(arc, sessions=[session_id]).table]
    table = _sorted(tables)
    if table.num_rows == 0:
        raise ArchiveError(f"{arc.location}: no session {session_id!r} "
                           f"(list them with `rtreplay sessions {arc.location}`)")
    return table
