"""Getting records onto disk without slowing the forwarding path.

The proxy runs this in its recorder process (`rtreplay.recorder.child`); tools that drive sessions themselves
(replay) use it in-process.

`ArchiveWriter` owns a writer thread, a finalizer thread and one bounded queue shared by all sessions:
  - the event loop only appends records to the queue (`SessionHandle.message`, `.lifecycle`, …);
  - the writer thread wakes every half flush interval (or sooner when much is queued), appends the queued
    records to each session's journal (`rtreplay.recorder.journal`, an Arrow IPC stream) with plain writes,
    in pieces that each end by offering the CPU back (`rtreplay.recorder.cpu`), and fsyncs journals at least
    once per flush interval; when a session ends, the finalizer thread turns its
    journal into Parquet, so that no conversion holds up the journaling of the sessions still open.
    A process killed with `kill -9` keeps whatever was written; the OS has it.
  - Backpressure, never silent loss: when the queue holds more than `high_water` bytes, every session
    that adds a record is paused (its `on_pause` callback stops reading its sockets) until the queue is
    below `low_water`. The cap is soft: records that arrive in the same socket read are still queued.
  - A journal write that fails (disk full) is rolled back to the last complete batch; the records in it
    are counted as lost, and a `proxy.error` record with the count is written once writing works again.
  - Any other failure of the writer thread ends it: `failed` says why and `on_failed(message)` is called
    in the loop thread (the recorder process then exits, so the proxy stops relaying).

A journal holds an exclusive `flock` from its creation until it has become Parquet, so `archive.recover`
never finalizes (or reads half-made) a live session.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtreplay.recorder import archive, cpu
from rtreplay.recorder.core import Record, SessionRecorder
from rtreplay.recorder.journal import JournalFile, pieces, records_to_batch
from rtreplay.recorder.redact import Redactor
from rtreplay.recorder.schema import CLIENT, PROXY_CLOSE, PROXY_ERROR, SERVER, new_session_id

log = logging.getLogger(__name__)

_WAKE_BYTES = 1 << 20  # wake the writer early once this much is queued
_RECORD_OVERHEAD = 128  # bytes counted per record on top of payload and audio
# Ended sessions waiting for the finalizer thread (each holds its journal open): past this, the writer thread
# waits for a conversion to finish, as it did when it converted them itself.
_MAX_FINISHING = 64


class _Reported(int):
    """A queue item: the loop thread queued a `proxy.error` for this many lost records of the session."""


class SessionHandle:
    """One session's recording: a `SessionRecorder` whose records go to the writer's queue.

    Call from the event loop thread only. `on_pause`/`on_resume` are called when the writer wants this
    session to stop/restart reading from its peers (set them before recording).
    """

    def __init__(self, writer: ArchiveWriter, recorder: SessionRecorder) -> None:
        self._writer = writer
        self.recorder = recorder
        self.session_id = recorder.session_id
        self.on_pause: Callable[[], None] = lambda: None
        self.on_resume: Callable[[], None] = lambda: None
        self.closed = False

    def message(self, direction: str, data: bytes, is_text: bool, mono_ns: int | None = None,
                wall_ns: int | None = None) -> None:
        mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        self._writer._put(self, self.recorder.message(direction, data, is_text, mono_ns, wall_ns))

    def client(self, text: str) -> None:
        """Record a text message the client sent (for tools that drive a session themselves)."""
        self.message(CLIENT, text.encode(), True)

    def server(self, text: str) -> None:
        """Record a text message the server sent."""
        self.message(SERVER, text.encode(), True)

    def lifecycle(self, kind: str, info: dict[str, Any], mono_ns: int | None = None,
                  wall_ns: int | None = None) -> None:
        mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        self._writer._put(self, self.recorder.lifecycle(kind, info, mono_ns, wall_ns))

    def close(self, info: dict[str, Any] | None = None, mono_ns: int | None = None,
              wall_ns: int | None = None) -> None:
        """Record `proxy.close` (payload `info`) and end the session: its journal becomes Parquet."""
        if self.closed:
            return
        self.lifecycle(PROXY_CLOSE, info or {}, mono_ns, wall_ns)
        self.closed = True
        self._writer._finish(self)

    def unparsed(self, direction: str, error: str, opcode: int, data: bytes, size: int, mono_ns: int,
                 wall_ns: int) -> None:
        """Record a frame that breaks the WebSocket protocol (`rtreplay.recorder.tap.Unparsed`)."""
        self._writer._put(self, self.recorder.unparsed(direction, error, opcode, data, size, mono_ns, wall_ns))

    def report_loss(self, lost: int, error: str) -> None:
        """Record a loss the writer thread counted; if the session has closed meanwhile, the writer records
        it itself when it finalizes the session (it keeps the count until told it is recorded)."""
        if not self.closed:
            self.lifecycle(PROXY_ERROR, {"error": f"journal write failed: {error}", "lost_records": lost})
            self._writer._queue.append((self, _Reported(lost), 0))


class ArchiveWriter:
    """Writes sessions into the archive at `out`. Use as `async with ArchiveWriter(out) as writer:`.

    Each session has its own redactor: what one session's handshake carried is scrubbed from that session
    only. `operator_secrets` (the operator's own keys, never a client's) are scrubbed from every session.
    Public counters: `queued_bytes`, `peak_queued_bytes`, `pauses` (times sessions were paused),
    `lost_records` (lost to write failures), `errors` (messages about files that could not be written).
    `on_problem(lost_records, message)`, if set, is also called (in the event loop thread) for each loss
    and each file error — the recorder process passes them on to the proxy process.
    """

    def __init__(self, out: Path, audio: str = "keep", flush_interval: float = 0.5,
                 high_water: int = 16 << 20, low_water: int | None = None) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.out = Path(out)
        self.audio = audio
        self.flush_interval = flush_interval
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.queued_bytes = 0
        self.peak_queued_bytes = 0
        self.pauses = 0
        self.lost_records = 0
        self.errors: list[str] = []
        self.operator_secrets: list[str] = []
        self.on_problem: Callable[[int, str], None] | None = None
        self.on_failed: Callable[[str], None] | None = None
        self.failed: str | None = None
        self._queue: collections.deque[tuple[SessionHandle, Record | None, int]] = collections.deque()
        self._paused: set[SessionHandle] = set()
        self._reporting: set[str] = set()  # writer thread: sessions whose loss the loop was asked to record
        self._wake = threading.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Ended sessions' journals, in the order they ended, for the finalizer thread (None: no more).
        self._finishing: queue.SimpleQueue[JournalFile | None] = queue.SimpleQueue()
        self._finishing_room = threading.BoundedSemaphore(_MAX_FINISHING)
        self._finisher: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None

    async def __aenter__(self) -> ArchiveWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="rtreplay-writer", daemon=True)
        self._finisher = threading.Thread(target=self._finish_journals, name="rtreplay-finalizer", daemon=True)
        self._finisher.start()
        self._thread.start()

    def open_session(self, open_info: dict[str, Any] | None = None, session_id: str | None = None,
                     at: tuple[int, int] | None = None) -> SessionHandle:
        """Start a session; records `proxy.open` with `open_info` unless it is None.

        `open_info["headers"]`, if present, is a list of (name, value) pairs: recorded by allowlist, their
        credentials scrubbed from every later record of this session. `at` is (monotonic ns, epoch ns) of the
        opening, default now.
        """
        redactor = Redactor(self.operator_secrets)
        handle = SessionHandle(self, SessionRecorder(session_id or new_session_id(), self.audio, redactor))
        if open_info is not None:
            mono, wall = at or (time.monotonic_ns(), time.time_ns())
            self._put(handle, handle.recorder.open(open_info, mono, wall))
        return handle

    async def close(self) -> None:
        """Write everything queued, finalize every session still open, stop the thread."""
        if self._done is None or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        await self._done

    # -- loop thread -----------------------------------------------------------------------------------

    def _put(self, handle: SessionHandle, record: Record) -> None:
        size = _RECORD_OVERHEAD + len(record[9]) + (len(record[10]) if record[10] is not None else 0)
        self._queue.append((handle, record, size))
        self.queued_bytes += size
        if self.queued_bytes > self.peak_queued_bytes:
            self.peak_queued_bytes = self.queued_bytes
        if self.queued_bytes > min(_WAKE_BYTES, self.high_water) and not self._wake.is_set():
            self._wake.set()
        if self.queued_bytes > self.high_water and handle not in self._paused and not handle.closed:
            self._paused.add(handle)
            self.pauses += 1
            handle.on_pause()

    def _finish(self, handle: SessionHandle) -> None:
        # A paused handle stays in `_paused` when it ends: its `on_resume` may stand for more than this
        # session (the recorder process pauses its whole input through it).
        self._queue.append((handle, None, 0))
        self._wake.set()

    def _drained(self, size: int) -> None:
        self.queued_bytes -= size
        if self.queued_bytes <= self.low_water and self._paused:
            paused, self._paused = self._paused, set()
            for handle in paused:
                handle.on_resume()

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nobody left to tell
            pass

    # -- writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        journals: dict[str, JournalFile] = {}
        lost: dict[str, tuple[int, str]] = {}
        last_sync = time.monotonic()
        try:
            while True:
                self._wake.wait(self.flush_interval / 2)
                self._wake.clear()
                cpu.woke()
                stopping = self._stopping
                items = []
                while self._queue:
                    items.append(self._queue.popleft())
                if items:
                    self._write(items, journals, lost)
                    self._call_in_loop(self._drained, sum(size for _, _, size in items))
                if time.monotonic() - last_sync >= self.flush_interval / 2 or stopping:
                    for journal in journals.values():
                        self._guard(journal.path, journal.sync)
                    last_sync = time.monotonic()
                if stopping and not self._queue:
                    break
            for session_id in list(journals):
                self._finalize(session_id, journals, lost, None)
        except BaseException as exc:  # a bug or a broken invariant: nothing more can be written
            self._fail("writer", exc)
        finally:
            self._finishing.put(None)
            self._finisher.join()  # type: ignore[union-attr]  # every ended session is Parquet (or reported)
            self._call_in_loop(self._done.set_result, None)  # type: ignore[union-attr]

    def _finish_journals(self) -> None:
        """The finalizer thread: turns ended sessions' journals into Parquet. Converting a session reads and
        writes all of it, compressed; done in the writer thread, it held up the journaling of every session
        still open — and that journaling is what the proxy's bounds wait on. The journal's lock passes from
        one thread to the other with the open file, so `recover` never sees it free."""
        try:
            while (journal := self._finishing.get()) is not None:
                self._guard(journal.path, lambda: journal.finalize(self.out))  # noqa: B023  (called at once)
                self._finishing_room.release()
        except BaseException as exc:
            self._fail("finalizer", exc)
            while self._finishing.get() is not None:  # convert nothing more (journals stay for `recover`), but
                self._finishing_room.release()  # never leave the writer thread waiting for room

    def _fail(self, thread: str, exc: BaseException) -> None:
        self.failed = f"the archive {thread} thread failed: {exc!r}"
        log.exception("%s", self.failed)
        if self.on_failed is not None:
            self._call_in_loop(self.on_failed, self.failed)

    def _write(self, items: list[tuple[SessionHandle, Record | None, int]], journals: dict[str, JournalFile],
               lost: dict[str, tuple[int, str]]) -> None:
        """Append queued records to their journals, session by session, in queue order."""
        pending: dict[str, list[Record]] = {}
        handles: dict[str, SessionHandle] = {}
        for handle, record, _ in items:
            sid = handle.session_id
            handles[sid] = handle
            if type(record) is _Reported:  # its proxy.error is in `pending`: write it, then forget the count
                if self._append(sid, pending.pop(sid, []), journals, lost, handle):
                    count, error = lost.pop(sid, (0, ""))
                    if count > record:
                        lost[sid] = (count - record, error)
                self._reporting.discard(sid)
                continue
            if record is not None:
                pending.setdefault(sid, []).append(record)
                continue
            self._append(sid, pending.pop(sid, []), journals, lost, handle)
            self._finalize(sid, journals, lost, handle)
        for sid, rows in pending.items():
            self._append(sid, rows, journals, lost, handles[sid])

    def _append(self, sid: str, rows: list[Record], journals: dict[str, JournalFile],
                lost: dict[str, tuple[int, str]], handle: SessionHandle) -> bool:
        """Write `rows`; False (and counted as lost) if that failed."""
        if not rows:
            return True
        written = 0
        try:
            journal = journals.get(sid)
            if journal is None:
                journal = journals[sid] = JournalFile(archive.journal_path(self.out, sid))
            for piece in pieces(rows):
                cpu.checkpoint()
                journal.append(records_to_batch(piece).serialize())
                written += len(piece)
        except (OSError, pa.ArrowException) as exc:  # disk full; or a batch Arrow cannot hold (> 2 GiB)
            failed = len(rows) - written
            count, _ = lost.get(sid, (0, ""))
            lost[sid] = (count + failed, str(exc))
            self.lost_records += failed
            log.error("session %s: %d records lost: %s", sid, failed, exc)
            self._tell(failed, f"session {sid}: journal write failed: {exc}")
            return False
        if sid in lost and not handle.closed and sid not in self._reporting:
            # Told once; `lost` keeps the count until the loop's record of it is written (`_Reported`).
            self._reporting.add(sid)
            self._call_in_loop(handle.report_loss, *lost[sid])
        return True

    def _finalize(self, sid: str, journals: dict[str, JournalFile], lost: dict[str, tuple[int, str]],
                  handle: SessionHandle | None) -> None:
        """Close a session's journal and turn it into Parquet (the loop no longer uses its recorder)."""
        self._reporting.discard(sid)
        if sid in lost and handle is not None:
            count, error = lost.pop(sid)
            now = (time.monotonic_ns(), time.time_ns())
            record = handle.recorder.lifecycle(
                PROXY_ERROR, {"error": f"journal write failed: {error}", "lost_records": count}, *now)
            self._append(sid, [record], journals, lost, handle)
        journal = journals.pop(sid, None)
        if journal is not None:
            self._finishing_room.acquire()
            self._finishing.put(journal)

    def _guard(self, path: Path, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except (OSError, archive.ArchiveError) as exc:
            self.errors.append(f"{path}: {exc}")
            log.error("%s: %s", path, exc)
            self._tell(0, f"{path}: {exc}")
            return False

    def _tell(self, lost: int, message: str) -> None:
        if self.on_problem is not None:
            self._call_in_loop(self.on_problem, lost, message)
