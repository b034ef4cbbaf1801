"""The forwarding process's end of its recorder process (`rtreplay.recorder.child`).

The proxy process does no recording work: it hands a copy of every chunk it forwarded, and the facts of
each connection's life, to a child process over a local stream socket (`rtreplay.recorder.framing`). The child
parses, redacts, journals and writes Parquet. So the event loop that forwards frames never parses a
WebSocket frame, never builds an Arrow batch and never waits for a writer thread's GIL.

Contract:
  - `RecorderLink.start(...)` spawns the child (a fresh interpreter, its own session so a terminal's Ctrl-C
    reaches only the proxy) and returns once the child has recovered leftover journals under `out`.
  - `data(...)`/`send(...)` never block and never drop: frames are written together (one `sendmsg` of their
    pieces, no copy) at most `FLUSH_DELAY` after the first of them, or once `FLUSH_BYTES` are pending
    (`close()` sends the rest).
  - The relay never waits for the child short of a hard bound: copies are buffered here (bounded), and
    every connection's share of what the child has not yet taken is counted. A connection owing more than
    `session_bound` bytes is paused alone (`on_pause_session(conn)`, `on_resume_session(conn)` once half
    of it is taken): one flooding session cannot stall the others. Only at the hard bounds is every
    connection paused (`on_pause()`, then `on_resume()`): `high_water` bytes buffered in this process, or
    the oldest byte untaken for `MAX_LAG` seconds (what a `kill -9` of this process would lose). The child
    stops reading this socket while its own queue is over its high-water mark (at most `CHILD_QUEUE`), so
    memory is bounded at every stage.
  - Secrets: frames carry raw bytes (headers with keys included) in memory only; nothing is written to
    disk before the child's `SessionRecorder` has redacted it.
  - Durability: bytes written into the socket survive the proxy's death (the child reads until EOF,
    then finalizes every session). Bytes still in this process — the last `FLUSH_DELAY` of copies, and
    whatever the socket's kernel buffer could not take while the child lagged — die with a `kill -9`;
    progress marks (`rtreplay.recorder.marks`: bytes handed over per connection, on disk while copies are in
    flight) let the child count that loss into each session, and `rtreplay recover` report it.
  - `close()` sends EOF and waits until the child has finalized every session and exited.
  - If the child dies first, `failed` says so and `on_failed()` is called: the proxy then stops relaying
    rather than let traffic through unrecorded.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from rtreplay.recorder import framing, marks

log = logging.getLogger(__name__)

# How the recorder process is started; its options follow. Tests may point this at a wrapper.
CHILD_COMMAND = [sys.executable, "-m", "rtreplay.recorder.child"]
START_TIMEOUT = 60.0  # seconds for the child to recover leftover journals and say READY
# Copies wait up to FLUSH_DELAY (or until FLUSH_BYTES are pending) so that one write, and one wake-up of
# the child, carries many chunks: a write and a wake-up per chunk cost more than the relay itself.
FLUSH_DELAY = 0.005
FLUSH_BYTES = 128 * 1024
MAX_IOV = 512  # buffers per sendmsg (the system's limit, IOV_MAX, is 1024 on Linux and macOS)
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)  # a dead child is an error, not a SIGPIPE
SOCKET_BUFFER = 4 << 20  # asked of the kernel, at most high_water (it may give less): bytes there survive us
MAX_LAG = 0.25  # seconds the oldest copy may wait here for the child before every connection is paused
CHILD_QUEUE = 16 << 20  # the child's queue of records bound (its writer's high-water mark), at most high_water


class RecorderError(RuntimeError):
    """The recorder process could not be started, or ended unexpectedly."""


def _noop() -> None:
    pass


class RecorderLink:
    """Sends recording frames to the child. Counters: `queued_bytes`, `peak_queued_bytes` (bytes written
    but not yet taken by the child), `pauses` (times every connection was paused), `session_pauses`
    (times one connection was), `lost_records` and `errors` (as reported by the child)."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket, high_water: int,
                 low_water: int | None = None, mark_writer: marks.MarkWriter | None = None) -> None:
        self.process = process
        self._marks = mark_writer
        self._forwarded: dict[int, int] = {}  # conn -> bytes handed over (flushed), for the progress marks
        self._unopened: set[int] = set()  # conns whose OPEN the child has not taken yet
        self._ended: collections.deque[tuple[int, int, int]] = collections.deque()  # (stream offset, kind, conn)
        self._ending: list[tuple[int, int]] = []  # (kind, conn) of the OPENs and CLOSEs in `_parts`
        self._marked_at = 0.0
        self._unmarked = False
        self._marked_in_flight = False
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.session_bound = max(high_water // 8, FLUSH_BYTES)
        self.peak_queued_bytes = 0
        self.pauses = 0
        self.session_pauses = 0
        self.lost_records = 0
        self.errors: list[str] = []
        self.paused = False
        self.failed: str | None = None
        self.on_pause: Callable[[], None] = _noop
        self.on_resume: Callable[[], None] = _noop
        self.on_failed: Callable[[], None] = _noop
        self.on_pause_session: Callable[[int], None] = lambda conn: None
        self.on_resume_session: Callable[[int], None] = lambda conn: None
        # Per-connection accounting of copies the child has not taken yet (here, unsent or in `_out`):
        self._owed: dict[int, int] = {}  # conn -> bytes
        self._counts: dict[int, int] = {}  # conn -> bytes in `_parts`
        self._first_at = 0  # monotonic ns of the oldest copy in `_parts`
        self._batches: collections.deque[tuple[int, int, dict[int, int]]] = collections.deque()  # handed over:
        self._sent = 0  # (end offset in bytes ever written, monotonic ns of its oldest copy, bytes per conn)
        self._paused_conns: set[int] = set()
        self._lagging = False
        self._full = False
        self._check_at: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        # The socket is written directly, a batch's pieces in one `sendmsg`: no join, and what the kernel
        # cannot take yet waits in `_out` as views of the same bytes (asyncio's transport would copy it).
        self._sock: socket.socket | None = sock
        sock.setblocking(False)
        self._out: collections.deque[memoryview] = collections.deque()
        self._out_bytes = 0  # bytes in `_out`
        self._writing = False  # a writer callback is registered for the socket
        self._eof_pending = False  # close(): shut our side down once `_out` is empty
        self._parts: list[bytes] = []
        self._pending = 0  # bytes of DATA payload in `_parts`
        self._flush_at: asyncio.TimerHandle | None = None
        self._closing = False
        self._decoder = framing.Decoder()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._failure: asyncio.Future[str] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()

    @classmethod
    async def start(cls, out: Path, *, audio: str = "keep", flush_interval: float = 0.5,
                    high_water: int = 64 << 20, secrets: Iterable[str] = ()) -> RecorderLink:
        """Spawn the recorder for archive `out`; `secrets` are header values it must scrub everywhere."""
        if audio not in ("keep", "drop"):
            raise ValueError(f"audio must be 'keep' or 'drop', not {audio!r}")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        mark_writer = marks.MarkWriter(Path(out) / "journal")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(SOCKET_BUFFER, high_water))
        try:
            process = subprocess.Popen(
                [*CHILD_COMMAND, "--fd", str(theirs.fileno()), "--out", str(out), "--audio", audio,
                 "--flush-interval", repr(flush_interval), "--high-water", str(min(high_water, CHILD_QUEUE)),
                 "--marks", str(mark_writer.path)],
                pass_fds=[theirs.fileno()], start_new_session=True)
        except BaseException:
            ours.close()
            mark_writer.remove()
            raise
        finally:
            theirs.close()
        link = cls(process, ours, high_water, mark_writer=mark_writer)
        link._loop.add_reader(ours.fileno(), link._read_ready)
        for secret in secrets:
            link.send(0, framing.SECRET, framing.NO_DIRECTION, secret.encode())
        try:
            await asyncio.wait_for(asyncio.shield(link._ready), START_TIMEOUT)
        except BaseException:
            link.kill()
            raise
        return link

    # -- sending (event loop thread) -------------------------------------------------------------------

    def data(self, conn: int, direction: int, data: bytes, mono_ns: int, wall_ns: int) -> None:
        """A chunk forwarded for connection `conn`, received at (`mono_ns`, `wall_ns`)."""
        size = len(data)
        self._parts += (framing.HEADER.pack(conn, framing.DATA, direction, mono_ns, wall_ns, size), data)
        if not self._pending:
            self._first_at = mono_ns
        self._pending += size
        counts = self._counts
        counts[conn] = counts.get(conn, 0) + size
        owed = self._owed[conn] = self._owed.get(conn, 0) + size
        if owed > self.session_bound and conn not in self._paused_conns:
            self._paused_conns.add(conn)
            self.session_pauses += 1
            self.on_pause_session(conn)
        if self._pending >= FLUSH_BYTES:
            self._flush()
        elif self._flush_at is None:
            self._flush_at = self._loop.call_later(FLUSH_DELAY, self._flush)

    def send(self, conn: int, kind: int, direction: int, payload: bytes, at: tuple[int, int] | None = None) -> None:
        """Any other frame; `at` is (monotonic ns, epoch ns), default now."""
        mono, wall = at or (time.monotonic_ns(), time.time_ns())
        self._parts += (framing.header(conn, kind, direction, mono, wall, len(payload)), payload)
        if kind == framing.CLOSE or kind == framing.OPEN:
            self._ending.append((kind, conn))
            if kind == framing.OPEN:
                self._unopened.add(conn)
        if self._flush_at is None:
            self._flush_at = self._loop.call_later(FLUSH_DELAY, self._flush)

    def send_json(self, conn: int, kind: int, info: dict[str, object], at: tuple[int, int] | None = None) -> None:
        self.send(conn, kind, framing.NO_DIRECTION, orjson.dumps(info), at)

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if not self._parts:
            return
        parts, self._parts, self._pending = self._parts, [], 0
        counts, self._counts = self._counts, {}
        if self._sock is None:
            return  # the child is gone: `failed` is set and the proxy is closing every connection
        size = sum(map(len, parts))
        self._sent += size
        self._batches.append((self._sent, self._first_at or time.monotonic_ns(), counts))
        self._first_at = 0
        self._out.extend(map(memoryview, parts))
        self._out_bytes += size
        if not self._writing:
            self._send()
        forwarded = self._forwarded
        for conn, n in counts.items():
            forwarded[conn] = forwarded.get(conn, 0) + n
        if self._ending:
            self._ended.extend((self._sent, kind, conn) for kind, conn in self._ending)
            self._ending = []
        self._unmarked = True
        self._account()

    def _send(self) -> None:
        """Hand the kernel as much of `_out` as it takes; wait for the socket to be writable for the rest."""
        out = self._out
        while out and self._sock is not None:
            try:
                n = self._sock.sendmsg(list(itertools.islice(out, MAX_IOV)), (), _NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._connection_lost(exc)
                return
            self._out_bytes -= n
            while out and n >= len(out[0]):
                n -= len(out.popleft())
            if n:
                out[0] = out[0][n:]
        sock = self._sock
        if sock is None:
            return
        if out and not self._writing:
            self._writing = True
            self._loop.add_writer(sock.fileno(), self._write_ready)
        elif not out and self._writing:
            self._writing = False
            self._loop.remove_writer(sock.fileno())
        if not out and self._eof_pending:
            self._shutdown()

    def _write_ready(self) -> None:
        self._send()
        self._account()

    def _account(self) -> None:
        """Credit what the child took (what the socket took) to its connections; apply the bounds."""
        if self._sock is None:
            return
        buffered = self._out_bytes
        if buffered > self.peak_queued_bytes:
            self.peak_queued_bytes = buffered
        if buffered > self.high_water:
            self._set_paused(full=True)
        elif self._full and buffered <= self.low_water:
            self._set_paused(full=False)
        taken, batches, owed = self._sent - buffered, self._batches, self._owed
        while batches and batches[0][0] <= taken:
            for conn, size in batches.popleft()[2].items():
                left = owed[conn] - size
                if left:
                    owed[conn] = left
                else:
                    del owed[conn]
                if conn in self._paused_conns and left <= self.session_bound // 2:
                    self._paused_conns.discard(conn)
                    self.on_resume_session(conn)
        ended = self._ended
        while ended and ended[0][0] <= taken:  # the child has its OPEN (or CLOSE: no mark needed any more)
            _, kind, conn = ended.popleft()
            if kind == framing.OPEN:
                self._unopened.discard(conn)
            else:
                self._forwarded.pop(conn, None)
        # Marks matter only while copies are at risk here (not yet taken): a kill -9 loses exactly those. Once
        # all is taken, one more mark, so that no mark outlives what it said (a connection not yet opened).
        if batches:
            if self._unmarked and time.monotonic() - self._marked_at >= marks.INTERVAL:
                self._mark()
                self._marked_in_flight = True
        elif self._marked_in_flight:
            self._mark()
            self._marked_in_flight = False
        lag = (time.monotonic_ns() - batches[0][1]) / 1e9 if batches else 0.0
        if lag > MAX_LAG or (self._lagging and lag > MAX_LAG / 2):
            self._set_paused(lagging=True)
        elif self._lagging:
            self._set_paused(lagging=False)
        if batches and self._check_at is None:  # look again even if no new copy comes
            self._check_at = self._loop.call_later(FLUSH_DELAY, self._check)

    def _mark(self) -> None:
        """Write the progress mark (while copies are in flight, at most every `marks.INTERVAL`)."""
        self._unmarked = False
        self._marked_at = time.monotonic()
        if self._marks is None:
            return
        try:
            self._marks.write(self._forwarded, self._unopened)
        except OSError as exc:  # a full disk: the recorder reports it too; a loss would then go uncounted
            log.warning("progress mark not written: %s", exc)

    def _check(self) -> None:
        self._check_at = None
        self._account()

    def _set_paused(self, full: bool | None = None, lagging: bool | None = None) -> None:
        """Every connection is paused while this process holds `high_water` bytes (`full`) or the child
        lags by more than `MAX_LAG` (`lagging`)."""
        before = self.paused
        self._full = self._full if full is None else full
        self._lagging = self._lagging if lagging is None else lagging
        self.paused = self._full or self._lagging
        if self.paused and not before:
            self.pauses += 1
            self.on_pause()
        elif before and not self.paused:
            self.on_resume()

    @property
    def queued_bytes(self) -> int:
        return self._out_bytes + sum(len(p) for p in self._parts)

    # -- the socket ------------------------------------------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = self._sock.recv(64 * 1024)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._connection_lost(exc)
            return
        if not data:  # the child closed its end: it has exited, or is about to
            self._connection_lost(None)
            return
        for frame in self._decoder.feed(data):
            if frame.kind == framing.READY and not self._ready.done():
                self._ready.set_result(None)
            elif frame.kind == framing.PROBLEM:
                problem = orjson.loads(frame.payload)
                self.lost_records += problem.get("lost_records", 0)
                self.errors.append(problem.get("error", ""))

    def _shutdown(self) -> None:
        """No more frames: the child reads to EOF, finalizes every session and exits."""
        self._eof_pending = False
        try:
            self._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]
        except OSError as exc:
            self._connection_lost(exc)

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            if self._writing:
                self._loop.remove_writer(sock.fileno())
                self._writing = False
            sock.close()
        self._out.clear()
        self._out_bytes = 0

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._sock is None:
            return
        self._drop_socket()
        if not self._closing:
            self.failed = f"the recorder process ended unexpectedly ({exc or 'connection closed'})"
            log.error("%s; connections are closed so that nothing passes unrecorded", self.failed)
            if not self._ready.done():
                self._ready.set_exception(RecorderError(self.failed))
            self._failure.set_result(self.failed)
            self.on_failed()
        if not self._lost.done():
            self._lost.set_result(None)

    async def wait_failed(self) -> str:
        """Wait until the recorder process ends unexpectedly; why (never returns while it works)."""
        return await asyncio.shield(self._failure)

    # -- ending ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Send what is pending, then EOF; wait until the child has finalized every session and exited."""
        self._flush()
        self._closing = True
        if self._sock is not None:
            if self._out:
                self._eof_pending = True  # once the rest is sent (`_send`)
            else:
                self._shutdown()
        await self._lost
        code = await asyncio.to_thread(self.process.wait)
        if code != 0:
            self.errors.append(f"recorder process exited with status {code}")
            log.error("recorder process exited with status %s", code)
        if self._marks is not None:
            if code == 0:
                self._marks.remove()  # every session finalized: nothing left to count
            else:
                self._marks.close()  # left for `rtreplay recover` to report

    def kill(self) -> None:
        """Stop the child at once (start-up failed); its journals stay for `rtreplay recover`."""
        self._closing = True
        self._drop_socket()
        if not self._lost.done():
            self._lost.set_result(None)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._marks is not None:
            self._marks.remove()  # nothing was relayed yet
