"""The forwarding process's end of its recorder process (`rtreplay.recorder.child`).

The proxy process does no recording work: it hands a copy of every chunk it forwarded, and the facts of
each connection's life, to a child process over a local stream socket (`rtreplay.recorder.framing`). The child
parses, redacts, journals and writes Parquet. So the event loop that forwards frames never parses a
WebSocket frame, never builds an Arrow batch and never waits for a writer thread's GIL.

Contract:
  - `RecorderLink.start(...)` spawns the child (a fresh interpreter, its own session so a terminal's Ctrl-C
    reaches only the proxy) and returns once the child has recovered leftover journals under `out`.
  - `data(...)`/`send(...)` never block and never drop: frames are joined and written together at most
    `FLUSH_DELAY` after the first of them, or once `FLUSH_BYTES` are pending (`close()` sends the rest).
  - Backpressure: when the socket's write buffer passes `high_water` bytes (the child lags), `on_pause()`
    is called — the proxy then pauses reading on *all* its connections: the child is one shared resource,
    and a connection with nothing to read loses nothing by being paused. `on_resume()` follows below
    `low_water`. The child pauses reading this socket while its own disk queue is over `high_water`, so
    memory is bounded at every stage.
  - Secrets: frames carry raw bytes (headers with keys included) in memory only; nothing is written to
    disk before the child's `SessionRecorder` has redacted it.
  - Durability: bytes written into the socket survive the proxy's death (the child reads until EOF,
    then finalizes every session). Bytes still in this process — the last `FLUSH_DELAY` of copies, and
    whatever the socket's kernel buffer could not take while the child lagged — die with a `kill -9`.
  - `close()` sends EOF and waits until the child has finalized every session and exited.
  - If the child dies first, `failed` says so and `on_failed()` is called: the proxy then stops relaying
    rather than let traffic through unrecorded.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from rtreplay.recorder import framing

log = logging.getLogger(__name__)

# How the recorder process is started; its options follow. Tests may point this at a wrapper.
CHILD_COMMAND = [sys.executable, "-m", "rtreplay.recorder.child"]
START_TIMEOUT = 60.0  # seconds for the child to recover leftover journals and say READY
# Copies wait up to FLUSH_DELAY (or until FLUSH_BYTES are pending) so that one write, and one wake-up of
# the child, carries many chunks: a write and a wake-up per chunk cost more than the relay itself.
FLUSH_DELAY = 0.005
FLUSH_BYTES = 128 * 1024
SOCKET_BUFFER = 4 << 20  # asked of the kernel, at most high_water (it may give less): bytes there survive us


class RecorderError(RuntimeError):
    """The recorder process could not be started, or ended unexpectedly."""


def _noop() -> None:
    pass


class RecorderLink(asyncio.Protocol):
    """Sends recording frames to the child. Counters: `queued_bytes`, `peak_queued_bytes` (bytes written
    but not yet taken by the child), `pauses` (times the proxy was paused), `lost_records` and `errors`
    (as reported by the child)."""

    def __init__(self, process: subprocess.Popen[bytes], high_water: int, low_water: int | None = None) -> None:
        self.process = process
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.peak_queued_bytes = 0
        self.pauses = 0
        self.lost_records = 0
        self.errors: list[str] = []
        self.paused = False
        self.failed: str | None = None
        self.on_pause: Callable[[], None] = _noop
        self.on_resume: Callable[[], None] = _noop
        self.on_failed: Callable[[], None] = _noop
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
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
                    high_water: int = 16 << 20, secrets: Iterable[str] = ()) -> RecorderLink:
        """Spawn the recorder for archive `out`; `secrets` are header values it must scrub everywhere."""
        if audio not in ("keep", "drop"):
            raise ValueError(f"audio must be 'keep' or 'drop', not {audio!r}")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(SOCKET_BUFFER, high_water))
        try:
            process = subprocess.Popen(
                [*CHILD_COMMAND, "--fd", str(theirs.fileno()), "--out", str(out), "--audio", audio,
                 "--flush-interval", repr(flush_interval), "--high-water", str(high_water)],
                pass_fds=[theirs.fileno()], start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        link = cls(process, high_water)
        transport, _ = await link._loop.connect_accepted_socket(lambda: link, ours)
        transport.set_write_buffer_limits(high_water, link.low_water)  # type: ignore[attr-defined]
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
        self._parts += (framing.HEADER.pack(conn, framing.DATA, direction, mono_ns, wall_ns, len(data)), data)
        self._pending += len(data)
        if self._pending >= FLUSH_BYTES:
            self._flush()
        elif self._flush_at is None:
            self._flush_at = self._loop.call_later(FLUSH_DELAY, self._flush)

    def send(self, conn: int, kind: int, direction: int, payload: bytes, at: tuple[int, int] | None = None) -> None:
        """Any other frame; `at` is (monotonic ns, epoch ns), default now."""
        mono, wall = at or (time.monotonic_ns(), time.time_ns())
        self._parts += (framing.header(conn, kind, direction, mono, wall, len(payload)), payload)
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
        data, self._parts, self._pending = b"".join(self._parts), [], 0
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the child is gone: `failed` is set and the proxy is closing every connection
        transport.write(data)
        size = transport.get_write_buffer_size()
        if size > self.peak_queued_bytes:
            self.peak_queued_bytes = size

    @property
    def queued_bytes(self) -> int:
        buffered = self._transport.get_write_buffer_size() if self._transport is not None else 0
        return buffered + sum(len(p) for p in self._parts)

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if frame.kind == framing.READY and not self._ready.done():
                self._ready.set_result(None)
            elif frame.kind == framing.PROBLEM:
                problem = orjson.loads(frame.payload)
                self.lost_records += problem.get("lost_records", 0)
                self.errors.append(problem.get("error", ""))

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1
        self.on_pause()

    def resume_writing(self) -> None:
        self.paused = False
        self.on_resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
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
        if self._transport is not None:
            self._transport.write_eof()
        await self._lost
        code = await asyncio.to_thread(self.process.wait)
        if code != 0:
            self.errors.append(f"recorder process exited with status {code}")
            log.error("recorder process exited with status %s", code)

    def kill(self) -> None:
        """Stop the child at once (start-up failed); its journals stay for `rtreplay recover`."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
