"""Finished sessions from a local spool to an object store (`--out s3://bucket/prefix`).

The proxy records into a local spool exactly as into a local archive (journals fsync'd, Parquet renamed into
place, the same crash guarantees); this moves each finished Parquet file to the same path under the
destination: uploaded, verified (size, and the footer read back with the same row count), and only then
removed from the spool. Nothing is ever overwritten: a destination file that exists already is accepted only
when it holds the same bytes (a retry after an upload whose removal was cut short), else the local file
stays and the failure is reported.

A failed upload is retried with exponential backoff. The first failure of a file is also written into the
session itself: a `proxy.error` record appended to its Parquet file in the spool ("upload to … failed: …"),
so the archive says what happened once the file arrives. Files left in the spool by a stop or a crash are
uploaded by the next proxy start or by `rtreplay recover`. Credentials come from the standard settings and
appear in no message and no record.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rtreplay.recorder import archive
from rtreplay.recorder.schema import EVENT_SCHEMA, PROXY, PROXY_ERROR
from rtreplay.recorder.store import display, filesystem_for

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0


class UploadError(Exception):
    """One file could not be uploaded; the message names it and the destination (never a credential)."""


@dataclass
class Uploaded:
    local: Path
    target: str  # the destination URL
    events: int
    problem: str | None = None


@dataclass
class _Retry:
    attempts: int = 0
    next_at: float = 0.0
    recorded: bool = False


@dataclass
class Uploader:
    """Moves finished Parquet files from `spool` to the archive at `dest` (a URL)."""

    spool: Path
    dest: str
    clock: Callable[[], float] = time.monotonic
    retries: dict[Path, _Retry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fs, self.root = filesystem_for(self.dest)
        self.name = display(self.dest)

    def pending(self) -> list[Path]:
        """Finished Parquet files waiting in the spool, in session order."""
        return sorted(p for p in (self.spool / "events").glob(f"*/*{archive.PARQUET_SUFFIX}") if p.is_file())

    def target(self, local: Path) -> str:
        return f"{self.root}/{local.relative_to(self.spool).as_posix()}"

    def upload(self, local: Path) -> Uploaded:
        """Upload one file, verify it, remove it from the spool; UploadError when any step fails."""
        target, url = self.target(local), f"{self.name}/{local.relative_to(self.spool).as_posix()}"
        try:
            data = local.read_bytes()
            rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
            info = self.fs.get_file_info(target)
            if info.type == pafs.FileType.File:
                with self.fs.open_input_file(target) as f:
                    if f.read() != data:
                        raise UploadError(f"{url} exists with other content: not overwritten; {local} kept")
            else:
                with self.fs.open_output_stream(target) as out:  # an object appears whole, at close
                    out.write(data)
                info = self.fs.get_file_info(target)
                with self.fs.open_input_file(target) as f:
                    back = pq.ParquetFile(f).metadata.num_rows
                if info.size != len(data) or back != rows:
                    raise UploadError(f"{url}: verification failed ({info.size} bytes and {back} rows read back, "
                                      f"{len(data)} and {rows} sent); {local} kept")
        except UploadError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise UploadError(f"upload of {local} to {url} failed: {_one_line(exc)}") from None
        local.unlink()
        self.retries.pop(local, None)
        return Uploaded(local, url, rows)

    def run_once(self, *, wait: bool = False) -> list[Uploaded]:
        """One pass over the spool: every file due is tried once (`wait`: ignore backoff)."""
        done = []
        now = self.clock()
        for local in self.pending():
            retry = self.retries.setdefault(local, _Retry())
            if not wait and retry.next_at > now:
                continue
            try:
                done.append(self.upload(local))
            except UploadError as exc:
                retry.attempts += 1
                retry.next_at = self.clock() + min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (retry.attempts - 1))
                if not retry.recorded:
                    retry.recorded = record_error(local, str(exc), retry.attempts)
                done.append(Uploaded(local, self.target(local), 0, str(exc)))
        return done


def record_error(local: Path, message: str, attempts: int) -> bool:
    """Append a `proxy.error` saying the upload failed to the session's spooled Parquet (atomic rewrite);
    False if the file could not be rewritten (the upload retries all the same)."""
    try:
        table = archive.read_file(local)[0]
        last = table.num_rows - 1
        seq = int(table.column("seq")[last].as_py()) + 1 if last >= 0 else 0
        sid = table.column("session_id")[0].as_py() if last >= 0 else local.name.split(".")[0]
        payload = orjson.dumps({"error": message, "upload_attempts": attempts}).decode()
        now_ns = time.time_ns()
        row = {"session_id": sid, "seq": seq, "ts": now_ns // 1000, "mono_ns": time.monotonic_ns(),
               "direction": PROXY, "type": PROXY_ERROR, "event_id": None, "response_id": None, "item_id": None,
               "payload": payload, "audio": None, "audio_at": None, "size": len(payload)}
        extra = pa.Table.from_pylist([row], schema=EVENT_SCHEMA)
        archive.write_parquet(pa.concat_tables([table.cast(EVENT_SCHEMA), extra]), local)
        return True
    except (archive.ArchiveError, OSError, pa.ArrowException):
        return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        secret = os.environ.get(var)
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
