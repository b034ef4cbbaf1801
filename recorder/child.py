"""The recorder process: turns the proxy's copy of its traffic into the archive.

Started by `rtreplay.recorder.link.RecorderLink` as `python -m rtreplay.recorder.child --fd N --out DIR …`, it
reads `rtreplay.recorder.framing` frames from the socket `N` and owns all recording work: per connection
(`rtreplay.recorder.child_connection`) it parses the upstream's HTTP answer, taps both WebSocket streams
(`rtreplay.recorder.tap`: frames, deflate, fragments, and an account of every byte it cannot record), and feeds
the messages to a `rtreplay.recorder.writer.ArchiveWriter` (sequence numbers, fields, redaction and audio cut in
`rtreplay.recorder.core`; journals, fsync and Parquet in the writer thread).

Secrets: frames arrive with raw bytes in memory only; `SessionRecorder` redacts before a record exists,
so nothing reaches the writer's queue, let alone disk, unredacted.

Lifetime: the socket is the child's lifeline. SIGINT and SIGTERM are ignored; at EOF — the proxy closed
cleanly, or died, even by `kill -9` — the child records a `proxy.error` on each session still open,
writes and finalizes everything, and exits. If the writer thread fails, whatever the reason, the child
exits at once with status `WRITER_FAILED`: the proxy then stops relaying (nothing passes unrecorded) and
exits non-zero, and the journals stay for `rtreplay recover`.

Memory is bounded: the taps share one `tap.Budget` for unfinished messages and cap each message
(`tap.MAX_MESSAGE`); and the child stops between two messages — not only between two socket reads, one of
which may inflate to many messages — while the writer's queue is over its high-water mark, and stops
reading the socket until the queue is back under its low-water mark. The proxy buffers meanwhile, up to
its own bound (`rtreplay.recorder.link`).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from rtreplay.recorder import archive, cpu, framing, marks, redact, refusals, tap
from rtreplay.recorder.child_connection import Connection
from rtreplay.recorder.schema import CLIENT, SERVER
from rtreplay.recorder.writer import ArchiveWriter

log = logging.getLogger(__name__)

WRITER_FAILED = 3  # exit status when the writer thread failed
NICE = 19  # niceness the recorder adds to its own (see `_step_aside`)
_HOLD_POLL = 0.005  # seconds between looks at the writer's queue while held
_DIRECTIONS = {framing.CLIENT: CLIENT, framing.SERVER: SERVER}


class ParentLink(asyncio.Protocol):
    """The child's end of the socket: decodes frames and routes them to their `Connection`, holding the
    work (and the socket) whenever the writer's queue is over its high-water mark."""

    def __init__(self, writer: ArchiveWriter) -> None:
        self.writer = writer
        self.budget = tap.Budget()
        self.connections: dict[int, Connection] = {}
        self.transport: asyncio.Transport | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._decoder = framing.Decoder()
        self._backlog: collections.deque[framing.Frame] = collections.deque()  # decoded, not yet handled
        self._current: tuple[int, Iterator[None]] | None = None  # a DATA frame being recorded
        self._held = False
        self._eof = False
        self.run_log = refusals.RunLog(lambda: writer.open_session(None))  # connections refused by the proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._backlog.extend(self._decoder.feed(data))
        self._work()

    def _work(self) -> None:
        cpu.woke()
        while not self._held:
            if self._current is None:
                if not self._backlog:
                    if self._eof and not self.ended.done():
                        self.ended.set_result(None)
                    return
                frame = self._backlog.popleft()
                work = self._guard(frame.conn, frame.kind, self._dispatch, frame)
                if work is None:
                    continue
                self._current = (frame.conn, work)
            conn, work = self._current
            if self._guard(conn, framing.DATA, self._record, work) is False:
                self._hold()
                return
            self._current = None

    def _record(self, work: Iterator[None]) -> bool:
        """Go on recording; False when the writer's queue is over its high-water mark (come back later)."""
        writer = self.writer
        for _ in work:
            cpu.checkpoint()
            if writer.queued_bytes > writer.high_water:
                return False
        return True

    def _guard(self, conn: int, kind: int, action: Any, arg: Any) -> Any:
        try:
            return action(arg)
        except Exception as exc:  # our bug: keep recording the other sessions, and say so in this one
            log.exception("recorder: frame %s of connection %s", kind, conn)
            connection = self.connections.pop(conn, None)
            if connection is not None:
                connection.abandon(f"recorder failed: {exc!r}", close=True)
            return None

    def _hold(self) -> None:
        if not self._held:
            self._held = True
            if self.transport is not None:
                self.transport.pause_reading()
        asyncio.get_running_loop().call_later(_HOLD_POLL, self._poll)

    def _poll(self) -> None:
        if self.writer.queued_bytes > self.writer.low_water:
            asyncio.get_running_loop().call_later(_HOLD_POLL, self._poll)
            return
        self._held = False
        self._work()
        if not self._held:
            self.resume()

    def _dispatch(self, frame: framing.Frame) -> Iterator[None] | None:
        kind, conn = frame.kind, frame.conn
        if kind == framing.DATA:
            connection = self.connections.get(conn)
            if connection is not None:  # None: dropped after a recorder failure
                return connection.feed(_DIRECTIONS[frame.direction], frame.payload, frame.mono_ns, frame.wall_ns)
        elif kind == framing.OPEN:
            self.connections[conn] = Connection(self.writer, self, orjson.loads(frame.payload),
                                                (frame.mono_ns, frame.wall_ns))
        elif kind == framing.ERROR and conn in self.connections:
            self.connections[conn].error(orjson.loads(frame.payload), frame.mono_ns, frame.wall_ns)
        elif kind == framing.CLOSE and conn in self.connections:
            self.connections.pop(conn).close(orjson.loads(frame.payload), frame.mono_ns, frame.wall_ns)
        elif kind == framing.REFUSED:
            self.run_log.record(orjson.loads(frame.payload), frame.mono_ns, frame.wall_ns)
        elif kind == framing.SECRET:
            self.writer.operator_secrets += redact.handshake_secrets([("authorization", frame.payload.decode())])
        return None

    def eof_received(self) -> bool:
        self._eof = True
        if not self._held and self._current is None and not self._backlog and not self.ended.done():
            self.ended.set_result(None)  # else once the backlog is recorded
        return True  # keep our half open: problems may still be reported

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for future in (self.ended, self.lost):
            if not future.done():
                future.set_result(None)

    def pause(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self._held and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def send(self, kind: int, payload: bytes = b"") -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(framing.encode(0, kind, framing.NO_DIRECTION, 0, 0, payload))

    def report(self, lost_records: int, error: str) -> None:
        self.send(framing.PROBLEM, orjson.dumps({"lost_records": lost_records, "error": error}))

    def abandon_open_sessions(self, marks_path: Path | None) -> list[dict[str, Any]]:
        """The proxy died: copies it had not handed over (all it held while the recorder lagged) died with it.
        Each open session gets a `proxy.error` saying so, counted from the proxy's progress marks
        (`rtreplay.recorder.marks`); the counted losses are returned for `rtreplay recover` to report."""
        forwarded, unopened, at = marks.read(marks_path) if marks_path is not None else ({}, set(), None)
        losses = []
        for conn, connection in self.connections.items():
            lost = max(0, forwarded.get(conn, 0) - connection.received)
            if lost:
                handle = connection.abandon(
                    f"the proxy process ended while the session was open: at least {lost} wire bytes it forwarded "
                    f"(by its last progress mark, {marks.iso(at)}) never reached the recorder; bytes forwarded "
                    "after that mark are not counted", lost_wire_bytes=lost, marked_at=marks.iso(at))
                losses.append({"session_id": handle.session_id, "conn": conn, "lost_wire_bytes": lost})
            else:
                connection.abandon("the proxy process ended while the session was open; frames it forwarded after "
                                   f"its last progress mark ({marks.iso(at)}) may be missing")
        for conn in sorted(unopened - self.connections.keys()):  # its OPEN died with the proxy: no session
            lost = forwarded.get(conn, 0)
            log.error("connection %s: the proxy died before handing over its opening; %s wire bytes it forwarded "
                      "are in no session", conn, lost)
            losses.append({"session_id": None, "conn": conn, "lost_wire_bytes": lost})
        self.connections.clear()
        return losses


async def serve(sock: socket.socket, out: Path, audio: str, flush_interval: float, high_water: int,
                marks_path: Path | None = None) -> None:
    """Recover leftover journals, say READY, record until EOF, then finalize everything (and, if the proxy
    died, count what it lost against its progress marks at `marks_path`)."""
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(archive.recover, out)
    async with ArchiveWriter(out, audio=audio, flush_interval=flush_interval, high_water=high_water) as writer:
        link = ParentLink(writer)
        await loop.connect_accepted_socket(lambda: link, sock)
        writer.on_problem = link.report
        writer.on_failed = _writer_failed
        link.send(framing.READY)
        await link.ended
        losses = link.abandon_open_sessions(marks_path)
    if marks_path is not None:
        marks.write_losses(marks_path, losses)  # every session is finalized: `recover` may report them now
    if link.transport is not None:
        link.transport.close()  # after writing what is buffered
        await link.lost


def _step_aside() -> None:
    """Keep out of the relay's way on a CPU. The recorder is off the forwarding path: the proxy buffers for it
    (bounded), so a late recorder costs nothing until a bound is reached. It runs at nice 19 (its threads
    inherit it), so that a busy machine gives the relay the CPU first; on its own that does not stop a burst
    of recording from delaying a relay woken on the same CPU (measured: nor does SCHED_IDLE), which is what
    `rtreplay.recorder.cpu` is for. Objects alive after start-up (modules, mostly) are moved out of the
    garbage collector's view, so a full collection stays short."""
    try:
        os.nice(NICE)
    except OSError:  # not allowed to change it: record at the proxy's priority
        pass
    gc.freeze()


def _writer_failed(error: str) -> None:
    """The writer thread is gone: nothing more can be recorded. Exit now, loudly, so that the proxy stops
    relaying instead of passing traffic unrecorded; journals stay for `rtreplay recover`."""
    log.error("%s; exiting so that the proxy stops relaying", error)
    logging.shutdown()
    os._exit(WRITER_FAILED)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtreplay.recorder.child", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the connected stream socket to the proxy")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--audio", choices=["keep", "drop"], default="keep")
    parser.add_argument("--flush-interval", type=float, default=0.5)
    parser.add_argument("--high-water", type=int, default=16 << 20)
    parser.add_argument("--marks", type=Path, help="the proxy's progress marks file (rtreplay.recorder.marks)")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _step_aside()
    logging.basicConfig(format="rtreplay recorder: %(message)s")
    sock = socket.socket(fileno=args.fd)
    held = marks.hold(args.marks) if args.marks is not None else None  # noqa: F841  (locked until we exit)
    asyncio.run(serve(sock, args.out, args.audio, args.flush_interval, args.high_water, args.marks))


if __name__ == "__main__":
    main()
