"""Where archive files live, how they are written, and how they are read back.

Layout under an archive root `<out>`:
    events/date=YYYY-MM-DD/<session_id>.parquet   finished sessions (hive-partitioned by start day)
    journal/<session_id>.arrows                   open sessions: an Arrow IPC stream, appended and fsync'd

A Parquet file is unreadable until its footer is written, so it is only ever written under a temporary
name and renamed into place (atomic on POSIX). A journal is readable up to its last complete batch, so a
killed proxy leaves a journal that `finalize_journal` (run by `rtreplay recover` and at proxy start) turns
into Parquet.

Reading never stops at a bad file: each problem is reported with the file's name, the rest is read.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtreplay.recorder.schema import (EVENT_SCHEMA, PROXY_CLOSE, PROXY_OPEN, SchemaVersionError, upgrade,
                                     version_of)

PARQUET_SUFFIX = ".parquet"
JOURNAL_SUFFIX = ".arrows"
TMP_SUFFIX = ".tmp"


class ArchiveError(Exception):
    """An archive file could not be read or written; the message names the file."""


@dataclass(frozen=True)
class ArchiveProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class ArchiveTable:
    """Events of an archive, sorted by (session_id, seq), and what could not be read."""

    table: pa.Table
    problems: list[ArchiveProblem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def session_day(session_id: str) -> str:
    """`YYYY-MM-DD` of a session, read off its id (ids start with the UTC start time)."""
    s = session_id
    if len(s) >= 8 and s[:8].isdigit():
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}"
    return "unknown"


def parquet_path(out: Path, session_id: str, part: int | None = None, day: str | None = None) -> Path:
    """Where a session's Parquet file goes; `day` (YYYY-MM-DD) for an id that does not start with its date."""
    name = session_id if part is None else f"{session_id}.part-{part:04d}"
    return Path(out) / "events" / f"date={day or session_day(session_id)}" / f"{name}{PARQUET_SUFFIX}"


def session_exists(out: Path, session_id: str) -> bool:
    """Does the archive at `out` hold a file (Parquet, part or journal) of `session_id`?"""
    names = (f"{session_id}{PARQUET_SUFFIX}", f"{session_id}.part-", f"{session_id}{JOURNAL_SUFFIX}")
    return Path(out).is_dir() and any(p.name.startswith(names) for p in Path(out).rglob(f"{session_id}*"))


def journal_path(out: Path, session_id: str) -> Path:
    return Path(out) / "journal" / f"{session_id}{JOURNAL_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Write events to `path` atomically (temporary name, fsync, rename), schema version in metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.cast(EVENT_SCHEMA)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    # Private like the journals (0600): payloads are conversations, whatever the umask says.
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        pq.write_table(table, f, compression="zstd", row_group_size=64 * 1024)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def read_journal(path: Path, mapped: bool = False) -> tuple[pa.Table, str | None]:
    """Every complete batch of a journal, and a note if the stream ended mid-batch (a crash).

    `mapped` reads it through a memory map, with no copy (the table then points into the page cache): only
    for a journal no one can change meanwhile (its `flock` held), since a file cut short under a map faults."""
    try:
        f = pa.memory_map(str(path), "r") if mapped else pa.OSFile(str(path), "rb")
    except OSError as exc:
        raise ArchiveError(f"{path}: not a readable journal ({exc})") from exc
    with f:
        return read_journal_stream(f, str(path))


def read_journal_stream(f: pa.NativeFile, name: str) -> tuple[pa.Table, str | None]:
    """`read_journal` over an open stream; `name` names it in errors."""
    batches: list[pa.RecordBatch] = []
    note = None
    try:
        reader = pa.ipc.open_stream(f)
        version = version_of(reader.schema)
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
    except SchemaVersionError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        if not batches and "reader" not in locals():
            raise ArchiveError(f"{name}: not a readable journal ({exc})") from exc
        note = f"journal cut short after {sum(b.num_rows for b in batches)} events ({exc})"
        version = version_of(reader.schema)
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        table = reader.schema.empty_table()
    return upgrade(table, version), note


# Timestamps a reader can turn into dates (Python's datetime: years 1 to 9999), in µs since the epoch.
TS_MIN_US = -62_135_596_800_000_000 + 86_400_000_000
TS_MAX_US = 253_402_300_800_000_000 - 86_400_000_000


def schema_problem(schema: pa.Schema) -> str | None:
    """What makes `schema` unlike the archive's (missing columns, other types), or None."""
    wrong = []
    for f in EVENT_SCHEMA:
        i = schema.get_field_index(f.name)
        if i < 0:
            wrong.append(f"column {f.name} missing")
        elif not schema.field(i).type.equals(f.type):
            wrong.append(f"column {f.name} is {schema.field(i).type}, not {f.type}")
    return "; ".join(wrong) or None


def ts_problem(low: int | None, high: int | None) -> str | None:
    """Why timestamps from `low` to `high` (µs) cannot be dates, or None."""
    if (low is not None and low < TS_MIN_US) or (high is not None and high > TS_MAX_US):
        return "timestamps outside the years 1-9999"
    return None


def footer_problem(path: str | Path | pa.NativeFile) -> str | None:
    """What a Parquet file's footer (a path, or an open file) shows is wrong with it (columns, timestamp
    statistics), or None.
    Reads only the footer: damage inside the data pages shows when the file is read."""
    meta = pq.ParquetFile(path).metadata
    schema = meta.schema.to_arrow_schema()
    problem = schema_problem(schema)
    if problem is not None:
        return problem
    column = schema.get_field_index("ts")
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is not None and stats.has_min_max:  # INT64 µs as written: no datetime conversion
            if (problem := ts_problem(stats.min_raw, stats.max_raw)) is not None:
                return problem
    return None


def check_table(table: pa.Table) -> None:
    """Raise ValueError when `table` does not have the archive's columns, or holds impossible timestamps."""
    problem = schema_problem(table.schema)
    if problem is None and table.num_rows:
        bounds = pc.min_max(table["ts"].cast(pa.int64()))
        problem = ts_problem(bounds["min"].as_py(), bounds["max"].as_py())
    if problem:
        raise ValueError(problem)


def read_file(path: Path) -> tuple[pa.Table, str | None]:
    """One archive file (Parquet or journal) at the current schema version, and a note on damage."""
    path = Path(path)
    return read_table(path, str(path), path.suffix == JOURNAL_SUFFIX)


def read_table(source: Path | pa.NativeFile, name: str, is_journal: bool) -> tuple[pa.Table, str | None]:
    """`read_file` over a path or an open stream (an object store's bytes); `name` names it in errors."""
    try:
        if is_journal:
            table, note = read_journal(source) if isinstance(source, Path) else read_journal_stream(source, name)
        else:
            pf = pq.ParquetFile(source)
            table, note = upgrade(pf.read(), version_of(pf.schema_arrow)), None
        check_table(table)  # hand-made files: the archive's columns and dates, or a named problem
        return table, note
    except SchemaVersionError as exc:
        raise ArchiveError(f"{name}: {exc}") from exc
    except ArchiveError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise ArchiveError(f"{name}: not a readable rtreplay Parquet file ({exc})") from exc


def iter_archive(root):  # -> Iterator[tuple[file, pa.Table | None, ArchiveProblem | None]]
    """Yield (file, table, None) per readable file, (file, None, problem) per unreadable one, for the
    archive at `root` (a path or an opened `rtreplay.recorder.store.Archive`). Memory holds one file at a time.
    """
    from rtreplay.recorder.store import Archive

    return Archive.open(root).iter()


def read_archive(root, sessions: Iterable[str] | None = None) -> ArchiveTable:
    """All events under `root` (a path or an opened Archive) as one Arrow table sorted by
    (session_id, seq); problems listed."""
    wanted = set(sessions) if sessions is not None else None
    tables: list[pa.Table] = []
    problems: list[ArchiveProblem] = []
    files: list[Path] = []
    for path, table, problem in iter_archive(root):
        if problem is not None:
            problems.append(problem)
        if table is None:
            continue
        if wanted is not None:
            table = table.filter(pc.is_in(table["session_id"], pa.array(sorted(wanted))))
        files.append(Path(str(path)))
        tables.append(table)
    if not tables:
        return ArchiveTable(EVENT_SCHEMA.empty_table(), problems, files)
    table = pa.concat_tables(tables).sort_by([("session_id", "ascending"), ("seq", "ascending")])
    return ArchiveTable(table, problems, files)


def finalize_journal(journal: Path, out: Path) -> tuple[Path, int, str | None]:
    """Turn a journal into the session's Parquet file and remove the journal.

    Returns (parquet path, events written, note on damage). Safe to run twice: if the Parquet file
    exists already the journal is simply removed. The caller holds the journal's `flock` (its writer, or
    `recover`), so the journal is read through a memory map.
    """
    journal = Path(journal)
    session_id = journal.name[: -len(JOURNAL_SUFFIX)]
    target = parquet_path(out, session_id)
    if target.exists():
        journal.unlink()
        return target, pq.ParquetFile(target).metadata.num_rows, None
    table, note = read_journal(journal, mapped=True)
    write_parquet(table, target)
    journal.unlink()
    return target, table.num_rows, note


@dataclass(frozen=True)
class Recovered:
    """One journal handled by `recover`: the Parquet file it became and what was wrong with it."""

    journal: Path
    parquet: Path | None
    events: int
    problem: str | None


def _ends_closed(parquet: Path) -> bool:
    """Does this session's file end with its `proxy.close` (or hold no proxy session at all)?"""
    types = pq.read_table(parquet, columns=["type"])["type"].to_pylist()
    return not types or types[-1] == PROXY_CLOSE or PROXY_OPEN not in types


def recover(out: Path) -> list[Recovered]:
    """Turn every leftover journal under `out` into Parquet; journals still open elsewhere are left alone.

    A journal is "still open" while a writer holds its `flock` (rtreplay.recorder.journal.JournalFile). A journal
    cut short by a crash is finalized with its complete batches and reported with a problem; an
    unreadable one is reported and kept.
    """
    import fcntl

    results: list[Recovered] = []
    journal_dir = Path(out) / "journal"
    if not journal_dir.is_dir():
        return results
    for journal in sorted(journal_dir.glob(f"*{JOURNAL_SUFFIX}")):
        try:
            fd = os.open(journal, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finalized meanwhile by its writer
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live session
            if not journal.exists():
                continue
            try:
                target, events, note = finalize_journal(journal, out)
                if note is None and not _ends_closed(target):
                    note = (f"no {PROXY_CLOSE} record: its recorder stopped while the session was open (killed, or "
                            "its disk full), so its last frames may be missing")
            except (ArchiveError, pa.ArrowException, OSError) as exc:
                results.append(Recovered(journal, None, 0, str(exc)))
                continue
            results.append(Recovered(journal, target, events, note))
        finally:
            os.close(fd)
    return results


def read_polars(root: Path, sessions: Iterable[str] | None = None):  # -> polars.DataFrame
    """All readable events under `root` as a polars DataFrame sorted by (session_id, seq).

    For the files that could not be read (and why), use `read_archive`, whose `problems` list them."""
    import polars as pl

    return pl.from_arrow(read_archive(root, sessions).table)
