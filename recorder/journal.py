"""An open session's journal: the Arrow IPC stream its records are appended to until it becomes Parquet.

`rtreplay.recorder.writer` owns the journals (its writer thread appends, its finalizer thread converts);
`records_to_batch` is also how the importer builds its batches.
"""
from __future__ import annotations

import array
import contextlib
import fcntl
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from rtreplay.recorder import archive, cpu
from rtreplay.recorder.core import Record
from rtreplay.recorder.schema import EVENT_SCHEMA

_SCHEMA_MESSAGE = EVENT_SCHEMA.serialize().to_pybytes()
_MAX_INT32 = (1 << 31) - 1
# Journaling works in pieces of about this many bytes, each ended by a `cpu.checkpoint`: an Arrow batch per
# `_BATCH_PIECE` of records, a system call per `_WRITE_PIECE` of a write.
_BATCH_PIECE = 1 << 20
_WRITE_PIECE = 64 << 10

_AUDIO = EVENT_SCHEMA.get_field_index("audio")


def records_to_batch(rows: list[Record]) -> pa.RecordBatch:
    columns = list(zip(*rows))
    arrays = [_binary(col) if i == _AUDIO else pa.array(col, type=field.type)
              for i, (col, field) in enumerate(zip(columns, EVENT_SCHEMA))]
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def _binary(values: tuple[bytes | None, ...]) -> pa.Array:
    """A binary column from bytes (or None), its data joined in one copy: Arrow's builder grows its buffer
    by reallocating as it appends, which copies the audio again and faults in fresh pages each time."""
    present = [v for v in values if v is not None]
    data = b"".join(present)
    if len(data) > _MAX_INT32:  # over binary's 32-bit offsets: Arrow's builder raises as it always did
        return pa.array(values, type=pa.binary())
    nulls = len(values) - len(present)
    offsets = array.array("i", itertools.accumulate((0 if v is None else len(v) for v in values), initial=0))
    validity = pa.array([v is not None for v in values], pa.bool_()).buffers()[1] if nulls else None
    return pa.Array.from_buffers(pa.binary(), len(values), [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 nulls)


def pieces(rows: list[Record]) -> Iterator[list[Record]]:
    """`rows` in order, in runs of about `_BATCH_PIECE` bytes of payload and audio."""
    piece: list[Record] = []
    size = 0
    for row in rows:
        piece.append(row)
        size += len(row[9]) + (len(row[10]) if row[10] is not None else 0)
        if size >= _BATCH_PIECE:
            yield piece
            piece, size = [], 0
    if piece:
        yield piece


class JournalFile:
    """An open session's journal: an Arrow IPC stream appended batch by batch, locked from its creation until
    it has become Parquet and is gone, so that `archive.recover` never touches it.

    It is born locked and readable: created under a temporary name (which `recover` ignores), locked, its
    schema written, then renamed into place — the lock belongs to the open file, so it survives the rename.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        tmp = path.with_name(path.name + archive.TMP_SUFFIX)
        self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._size = 0  # bytes of complete messages on disk
            self._write(memoryview(_SCHEMA_MESSAGE))
            self._size = len(_SCHEMA_MESSAGE)
            os.rename(tmp, path)
        except BaseException:
            os.close(self._fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.dirty = True

    def _write(self, view: memoryview) -> None:
        try:
            while view:
                view = view[os.write(self._fd, view[:_WRITE_PIECE]):]
                cpu.checkpoint()
        except OSError:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
            raise

    def append(self, data: bytes | pa.Buffer) -> None:
        """Write `data` whole, or roll the file back to its last complete message and raise OSError."""
        view = memoryview(data)
        self._write(view)
        self._size += view.nbytes
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fsync(self._fd)
            self.dirty = False

    def finalize(self, out: Path) -> None:
        """Turn the journal into Parquet and remove it, still holding the lock; then release it."""
        try:
            self.sync()
            archive.finalize_journal(self.path, out)
        finally:
            os.close(self._fd)
