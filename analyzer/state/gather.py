"""The requests of an opened archive, batch by batch, on a process pool (`rtreplay analyze --jobs`).

Files are grouped into batches of whole sessions; each batch is read (each file once) and turned into
request rows by the one per-session function (`request_rows.session_requests`), in this process with one
job or in worker processes with more. Batches come back in archive order, so the requests are in
(session_id, seq) order whatever the number of jobs, and memory follows the number of requests: a batch's
events live only in the process that matches them.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.match import MATCH_COLUMNS, MATCH_TYPES
from rtreplay.analyzer.state.reduce import collector_paused
from rtreplay.analyzer.state.request import Request
from rtreplay.analyzer.state.request_rows import REQUEST_SCHEMA, session_requests, to_requests
from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.schema import CLIENT
from rtreplay.recorder.store import Archive, ArchiveFile

BATCHES = 100  # progress steps; files are matched in about this many batches of whole sessions
BATCH_BYTES = 256 * 1024 * 1024  # a batch's files are held in memory (as read) until matched
POOL_MIN_BYTES = 32 * 1024 * 1024  # below this, starting worker processes costs more than it saves


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def session_batches(files: list[ArchiveFile], batches: int = BATCHES) -> list[list[ArchiveFile]]:
    """Files in about `batches` batches (fewer bytes than `BATCH_BYTES` each, unless one session is
    bigger), the parts of one session always in the same batch."""
    by_session: dict[str, list[ArchiveFile]] = defaultdict(list)
    for f in files:
        by_session[f.session_id].append(f)
    groups = list(by_session.values())
    size = max(1, -(-len(groups) // batches))
    out: list[list[ArchiveFile]] = [[]]
    count = held = 0
    for g in groups:
        g_bytes = sum(f.size for f in g)
        if out[-1] and (count == size or held + g_bytes > BATCH_BYTES):
            out.append([])
            count = held = 0
        out[-1] += g
        count += 1
        held += g_bytes
    return [b for b in out if b]


def batch_rows(fs: pafs.FileSystem, files: list[ArchiveFile],
               sessions: Sequence[str] | None) -> tuple[pa.Table, list[str]]:
    """The request rows of one batch of files, and the problems met reading them (a worker's whole job)."""
    arc = Archive("", fs, files)
    read: list = []
    wanted = pl.col("type").is_in(MATCH_TYPES) | ((pl.col("direction") == CLIENT) & pl.col("event_id").is_not_null())
    if sessions:
        wanted = wanted & pl.col("session_id").is_in(list(sessions))
    with collector_paused():
        for verify in (False, True):  # a file damaged inside fails the collect: then read each whole, name it
            read = []
            frames = [fr for f in files if (fr := load.file_frame(arc, f, read, verify=verify)) is not None]
            if not frames:
                return REQUEST_SCHEMA.empty_table(), [str(p) for p in read]
            try:
                events = pl.concat(frames, how="vertical").filter(wanted).select(list(MATCH_COLUMNS)).collect()
                break
            except (pl.exceptions.PolarsError, OSError):
                if verify:
                    raise
        return session_requests(events.to_arrow()), [str(p) for p in read]


def gather(arc: Archive, sessions: Sequence[str] = (), jobs: int = 1,
           advance: Callable[[int], None] = lambda _n: None,
           min_pool_bytes: int = POOL_MIN_BYTES) -> tuple[list[Request], list[str]]:
    """Requests of an opened archive (only `sessions` if given) and the problems met reading it; `advance`
    is called with the number of files of each batch done. Archives smaller than `min_pool_bytes` are read
    in this process whatever `jobs` says."""
    if not arc.files:
        raise ArchiveError(f"{arc.location}: no archive files here (expected events/**/*.parquet or "
                           "journal/*.arrows); record some with `rtreplay proxy --out DIR`")
    problems = [str(p) for p in arc.problems]
    tables: list[pa.Table] = []
    if sum(f.size for f in arc.files) < min_pool_bytes:
        jobs = 1
    unreadable = 0
    for batch, (table, read) in _run(arc, session_batches(arc.files), list(sessions) or None, jobs):
        tables.append(table)
        problems += read
        unreadable += len(read)
        advance(len(batch))
    if unreadable >= len(arc.files) and not any(t.num_rows for t in tables):  # nothing could be read
        raise ArchiveError(f"{arc.location}: nothing could be read; " + "; ".join(problems[:3]))
    with collector_paused():
        return to_requests(pa.concat_tables(tables)) if tables else [], problems


def _run(arc: Archive, batches: list[list[ArchiveFile]], sessions: list[str] | None,
         jobs: int) -> Iterator[tuple[list[ArchiveFile], tuple[pa.Table, list[str]]]]:
    if jobs <= 1 or len(batches) <= 1:
        for batch in batches:
            yield batch, batch_rows(arc.fs, batch, sessions)
        return
    # forkserver: forking this process (polars and Arrow threads running) could deadlock a child.
    with ProcessPoolExecutor(min(jobs, len(batches)), mp_context=multiprocessing.get_context("forkserver")) as pool:
        futures = [pool.submit(batch_rows, arc.fs, batch, sessions) for batch in batches]
        for batch, future in zip(batches, futures):
            yield batch, future.result()
