"""`rtreplay compact ARCHIVE --day D`: a day's many small per-session files rewritten into a few large ones.

Each output file holds whole sessions, sorted by (session_id, seq) and named `<first>--<last>.c-<id>.parquet`
after the sessions it spans, in row groups of 64 Ki rows whose `session_id`/`seq` statistics let readers
skip what they do not need. Older schema versions are upgraded on the way.

Atomic for rtreplay's readers, on a local disk and in an object store alike (neither needs a rename):
1. the new files are written (readers ignore a compacted file whose compaction has no manifest);
2. the manifest `_compact-<id>.json` is written in one piece: from then on the new files count and the files
   it lists as replaced do not — this is the commit;
3. the replaced files are deleted (a crash here leaves them hidden by the manifest; compacting again
   finishes the job). Files written into the day after step 1 listed it are not touched.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.schema import EVENT_SCHEMA
from rtreplay.recorder.store import COMPACTED_SEP, MANIFEST_PREFIX, Archive

TARGET_BYTES = 256 * 1024 * 1024  # an output file is closed at the first session boundary past this (in memory)
ROW_GROUP = 64 * 1024


@dataclass
class Compacted:
    day: str
    replaced: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    events: int = 0
    problems: list[str] = field(default_factory=list)


def compact(location: str, day: str, target_bytes: int = TARGET_BYTES) -> Compacted:
    """Compact the finished sessions of `day` (YYYY-MM-DD) of the archive at `location` (path or URL)."""
    arc = Archive.open(location, days=(day, day))
    mine = [f for f in arc.files if not f.is_journal and f"date={day}/" in f.path]
    result = Compacted(day)
    if len(mine) < 2 and not any(f.compaction for f in mine):
        return result  # nothing to gain
    folder = mine[0].path.rsplit("/", 1)[0]
    cid = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + os.urandom(4).hex()
    pending: list[pa.Table] = []
    held = 0
    for f in mine:
        table, note = arc.read(f)  # ArchiveError: stop before anything is committed
        if note:
            raise ArchiveError(f"{f}: {note}; not compacting a day with a damaged file")
        pending.append(table.cast(EVENT_SCHEMA))
        held += table.nbytes
        result.replaced.append(f.name)
        if held >= target_bytes:
            result.written.append(_write(arc, folder, pending, cid))
            pending, held = [], 0
    if pending:
        result.written.append(_write(arc, folder, pending, cid))
    result.events = sum(pq.ParquetFile(arc.fs.open_input_file(f"{folder}/{n}")).metadata.num_rows
                        for n in result.written)
    manifest = {"id": cid, "day": day, "replaces": result.replaced, "writes": result.written,
                "events": result.events, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = f"{folder}/{MANIFEST_PREFIX}{cid}.json"
    staged = f"{folder}/.{MANIFEST_PREFIX}{cid}.json.tmp" if arc.local else target  # an object appears whole
    with arc.fs.open_output_stream(staged) as out:
        out.write(json.dumps(manifest, indent=1).encode())
    if staged != target:
        arc.fs.move(staged, target)  # the commit
    for name in result.replaced:
        try:
            _delete(arc.fs, f"{folder}/{name}")
        except OSError as exc:  # hidden by the manifest all the same
            result.problems.append(f"{folder}/{name}: not deleted ({exc})")
    return result


def _delete(fs, path: str) -> None:
    fs.delete_file(path)


def _write(arc: Archive, folder: str, tables: list[pa.Table], cid: str) -> str:
    table = pa.concat_tables(tables).sort_by([("session_id", "ascending"), ("seq", "ascending")])
    sessions = table.column("session_id")
    first, last = sessions[0].as_py(), sessions[-1].as_py()
    name = f"{first}{COMPACTED_SEP}{last}.c-{cid}.parquet"
    with arc.fs.open_output_stream(f"{folder}/{name}") as out:
        pq.write_table(table, out, compression="zstd", row_group_size=ROW_GROUP, write_statistics=True)
    return name
