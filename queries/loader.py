"""Register the SQL views of `queries/*.sql` over an archive, and run queries and canned reports on them.

Files beside this module:
    macros.sql           DuckDB macros the views share; run first
    <view>.sql           one view each (a plain SELECT), created in the order of `VIEWS`
    report_<name>.sql    one canned report each (a plain SELECT over the views)
Every file opens with a comment saying what it answers and which columns it relies on.

The archive root is substituted in one place, the `{events_source}` of events.sql (`events_source`). Open
sessions (journals, Arrow IPC streams) cannot be read from SQL in every DuckDB build, so `connect` reads them
with `rtreplay.recorder.archive` and registers them as an Arrow table that `events` unions in; the script printed by
`view_script` (for the plain `duckdb` CLI) reads finished sessions only and says so.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from rtreplay.recorder.archive import PARQUET_SUFFIX, ArchiveError, ArchiveProblem, footer_problem
from rtreplay.recorder.schema import EVENT_SCHEMA
from rtreplay.recorder.store import Archive, ArchiveFile, is_url
from rtreplay.recorder.schema import SCHEMA_VERSION, SchemaVersionError, upgrade, version_of

QUERIES_DIR = Path(__file__).parent
MACROS = "macros"
# Views in dependency order: each reads only those before it.
VIEWS: tuple[str, ...] = (
    "events", "control_events", "refused", "session_config", "sessions", "requests", "answers", "response_done", "responses",
    "outcomes", "tool_calls", "errors", "turns",
    # the voice reports (docs/definitions.md, "Voice sessions")
    "voice_items", "voice_settings", "voice_sessions", "voice_responses", "tool_rounds", "latency_samples",
    "truncations", "barge_ins", "heard_transcripts", "voice_failures", "prices", "voice_cost",
)
# Views that `connect` stores as TEMP tables instead: small slices that the other views read many times over
# (a view is re-evaluated, Parquet scan included, at every reference). The `view_script` keeps them views.
MATERIALIZED: frozenset[str] = frozenset({"control_events"})
REPORT_PREFIX = "report_"
REMOTE_TABLE = "rtreplay_remote_parquet"  # a remote archive's Parquet, as an Arrow dataset
LOADED_TABLE = "rtreplay_loaded_events"  # journals (or a table given to `connect`), registered from Python


class SqlError(Exception):
    """A query, view or archive problem, as one line that names the view, column or file at fault."""


def one_line(exc: BaseException) -> str:
    """DuckDB's message without the query echo: the first line, plus its 'Did you mean' / candidates hint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    hints = [line for line in lines[1:] if line.startswith(("Did you mean", "Candidate bindings"))]
    return "; ".join([lines[0], *hints])


def _sql_file(name: str) -> Path:
    return QUERIES_DIR / f"{name}.sql"


def reports() -> tuple[str, ...]:
    """Names of the canned reports (`report_<name>.sql`), sorted."""
    return tuple(sorted(p.stem.removeprefix(REPORT_PREFIX) for p in QUERIES_DIR.glob(f"{REPORT_PREFIX}*.sql")))


def report_sql(name: str) -> str:
    """The SELECT of a canned report; SqlError naming the known reports when there is none by that name."""
    path = _sql_file(REPORT_PREFIX + name)
    if name not in reports():
        raise SqlError(f"no report named {name!r}; reports: {', '.join(reports())}")
    return path.read_text()


def summary(name: str) -> str:
    """The first header line of a view or report file, after its name: what it answers."""
    stem = name if name in VIEWS or name == MACROS else REPORT_PREFIX + name
    first = _sql_file(stem).read_text().splitlines()[0]
    return first.removeprefix("--").strip().split(":", 1)[-1].strip()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_source(root: Path | str, files: list[ArchiveFile] | None = None) -> str:
    """The read_parquet() call over an archive: every Parquet file under `root` (or `root` itself), or
    only `files` when given."""
    if is_url(root):
        pattern = f"{str(root).rstrip('/')}/**/*{PARQUET_SUFFIX}"  # for DuckDB clients with httpfs
        return f"read_parquet({_literal(pattern)}, hive_partitioning = true, union_by_name = true)"
    root = Path(root).resolve()
    pattern = str(root) if root.is_file() else f"{root}/**/*{PARQUET_SUFFIX}"
    listed = ", ".join(_literal(str(Path(f.path).resolve())) for f in files or [])
    source = _literal(pattern) if files is None else f"[{listed}]"
    return f"read_parquet({source}, hive_partitioning = true, union_by_name = true)"


def events_source(parquet: str | None, loaded: bool) -> str:
    """What events.sql selects from: Parquet, the registered in-memory table, or both unioned by name."""
    parts = [f"SELECT * FROM {parquet}"] if parquet else []
    if loaded:
        parts.append(f"SELECT * FROM {LOADED_TABLE}")
    if not parts:
        raise ValueError("events need a Parquet source or a loaded table")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")"


def prices_values(path: str | Path | None = None) -> str:
    """The price table (rtreplay.analyzer.report.cost) as the rows of a SQL VALUES list, for prices.sql."""
    from rtreplay.queries.prices import KINDS, load_prices

    rows = [f"({_literal(model)}, {_literal(kind)}, {float(entry[kind])!r})"
            for model, entry in load_prices(path).models.items()
            for kind in (*KINDS, "per_minute") if isinstance(entry.get(kind), (int, float))]
    return ", ".join(rows) or "(NULL, NULL, NULL)"


def _view_statements(source: str, materialize: frozenset[str] = frozenset(),
                     prices: str | Path | None = None) -> list[tuple[str, str]]:
    """(name, SQL) for the macros and every view, in the order they must run; `materialize` become TEMP tables."""
    statements = [(MACROS, _sql_file(MACROS).read_text())]
    for view in VIEWS:
        body = _sql_file(view).read_text()
        if view == "events":
            body = body.replace("{events_source}", source)
        elif view == "prices":
            body = body.replace("{prices_values}", prices_values(prices))
        create = "CREATE OR REPLACE TEMP TABLE" if view in materialize else "CREATE OR REPLACE VIEW"
        statements.append((view, f"{create} {view} AS\n{body.rstrip().rstrip(';')};\n"))
    return statements


def view_script(archive: str | Path) -> str:
    """Every macro and view as one SQL script over `archive`'s Parquet files, for any DuckDB client.

    Open journals are not included (see the module docstring); `rtreplay recover` turns them into Parquet.
    """
    _split_files(archive)  # the same checks (and errors) as `connect`
    location = archive.location if isinstance(archive, Archive) else str(archive)
    root = location if is_url(location) else Path(location).resolve()
    header = (
        f"-- rtreplay SQL views over {root}\n"
        "-- Run in any DuckDB client (duckdb CLI: .read this file). Finished sessions (Parquet) only;\n"
        "-- open sessions (journal/*.arrows) are read by `rtreplay sql` and rtreplay.queries.connect() alone.\n"
    )
    return header + "\n".join(sql for _, sql in _view_statements(events_source(parquet_source(root), False)))


def _split_files(source: str | Path | Archive) -> tuple[Archive, list[ArchiveFile], list[ArchiveFile]]:
    """The opened archive, its Parquet files and its open journals; SqlError when it cannot be listed or
    holds no Parquet file and no journal."""
    try:
        arc = Archive.open(source)
    except ArchiveError as exc:
        raise SqlError(str(exc)) from None
    parquet = [f for f in arc.files if not f.is_journal]
    journals = [f for f in arc.files if f.is_journal]
    if not parquet and not journals:
        raise SqlError(f"{arc.location}: no archive files (no *{PARQUET_SUFFIX} under it and no open journals)")
    return arc, parquet, journals


def _readable_parquet(arc: Archive, files: list[ArchiveFile], problems: list[ArchiveProblem]) -> list[ArchiveFile]:
    """The Parquet files whose footer reads and whose schema version this rtreplay understands; the
    others go to `problems` (one bad file must not take the whole archive down with it)."""
    readable = []
    for path in files:
        try:
            file_schema = pq.read_schema(path.path, filesystem=arc.fs)
            version = version_of(file_schema)
            upgrade(file_schema.empty_table(), version)  # refuses newer versions
            problem = None
            if version == SCHEMA_VERSION:
                with arc.fs.open_input_file(path.path) as f:
                    problem = footer_problem(f)
        except (pa.ArrowException, OSError, SchemaVersionError, KeyError) as exc:
            problems.append(ArchiveProblem(str(path), str(exc).strip("'\"")))
            continue
        if problem is not None:
            problems.append(ArchiveProblem(str(path), problem))
            continue
        readable.append(path)
    return readable


def _dataset(arc: Archive, files: list[ArchiveFile]) -> ds.Dataset:
    """The Parquet files of a remote archive as an Arrow dataset, with the hive `date` partition as a column
    (as read_parquet's hive_partitioning gives it) and older files' missing columns as nulls."""
    days = ds.HivePartitioning(pa.schema([("date", pa.date32())]))
    return ds.dataset([f.path for f in files], schema=EVENT_SCHEMA.append(pa.field("date", pa.date32())),
                      format="parquet", filesystem=arc.fs, partitioning=days,
                      partition_base_dir=arc.root or None)


def _read_journals(arc: Archive, journals: list[ArchiveFile],
                   on_problem: Callable[[ArchiveProblem], None] | None) -> pa.Table | None:
    tables = []
    for path in journals:
        try:
            table, note = arc.read(path)
        except ArchiveError as exc:
            if on_problem:
                on_problem(ArchiveProblem(str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        if note and on_problem:
            on_problem(ArchiveProblem(str(path), note))
        tables.append(table)
    return pa.concat_tables(tables) if tables else None


def connect(
    archive: str | Path | Archive | pa.Table,
    *,
    journals: bool = True,
    on_problem: Callable[[ArchiveProblem], None] | None = None,
    prices: str | Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every view of `queries/` registered over `archive`.

    `archive` is an archive directory, one archive file, or an Arrow table of events (rtreplay.recorder.schema).
    Open journals are read too unless `journals=False`; damaged or unreadable ones are reported to
    `on_problem` and skipped. Timestamps come back in UTC. Raises SqlError (one line) when the archive has no
    files or a view cannot be created over it.

    `MATERIALIZED` views are stored here, once (one filtered scan of the archive). Like the file list and
    the journals, they are the archive as it was at this call. `prices`: a price file for the `prices` view
    (default: the shipped queries/prices.json).
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, amid the rows
    if isinstance(archive, pa.Table):
        parquet, loaded = None, archive
    else:
        arc, parquet_files, journal_files = _split_files(archive)
        problems = list(arc.problems)
        readable = _readable_parquet(arc, parquet_files, problems)
        for problem in problems if on_problem else []:
            on_problem(problem)  # type: ignore[misc]
        parquet = None
        if readable and arc.local:
            parquet = parquet_source(Path(arc.location), readable)
        elif readable:  # object storage: DuckDB scans an Arrow dataset over the same file system
            con.register(REMOTE_TABLE, _dataset(arc, readable))
            parquet = REMOTE_TABLE
        loaded = _read_journals(arc, journal_files, on_problem) if journals else None
        if parquet is None and loaded is None:
            why = f" ({problems[-1]})" if problems else " (only unreadable or skipped journals)"
            raise SqlError(f"{arc.location}: nothing could be read{why}")
    if loaded is not None:
        con.register(LOADED_TABLE, loaded)
    for name, sql in _view_statements(events_source(parquet, loaded is not None), MATERIALIZED, prices):
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            con.close()
            raise SqlError(f"view {name} ({_sql_file(name).name}): {one_line(exc)}") from None
    return con


def relation(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation | None:
    """Run SQL (one or more statements) on a connection from `connect`; the last statement's rows, if any.

    Errors come back as SqlError with DuckDB's message on one line.
    """
    try:
        return con.sql(sql)
    except duckdb.Error as exc:
        raise SqlError(one_line(exc)) from None


def frame(archive: str | Path | pa.Table, sql: str) -> pl.DataFrame:
    """The result of `sql` over `archive`, with every view in place, as a polars DataFrame."""
    con = connect(archive)
    try:
        rel = relation(con, sql)
        if rel is None:
            return pl.DataFrame()
        try:
            return rel.pl()
        except duckdb.Error as exc:
            raise SqlError(one_line(exc)) from None
    finally:
        con.close()


def report(archive: str | Path | pa.Table, name: str) -> pl.DataFrame:
    """A canned report (see `reports()`) over `archive`, as a polars DataFrame."""
    return frame(archive, report_sql(name))
