"""Progress marks: what a proxy forwarded, per connection, kept on disk so that its death is a counted loss.

The proxy process holds copies of forwarded chunks until the kernel takes them into the socket to its recorder
process (`rtreplay.recorder.link`); a `kill -9` of the proxy loses what it held — much more than usual while the
recorder is stalled (a slow disk). So the proxy keeps a marks file, `<out>/journal/<run>.marks`, rewritten at
most every `INTERVAL` while copies are in flight: one JSON line `{"pid", "at" (epoch ns), "forwarded": {conn:
bytes handed to the link}, "unopened": [conns whose opening the recorder has not taken yet]}`. At the end of its input the recorder compares each connection still open (its
proxy died) with what it received: the difference is written into the session as a `proxy.error` with
`lost_wire_bytes`, and into `<run>.lost` (one JSON line per session), which `rtreplay recover` reports once
and removes; a connection still unopened at the last mark that the recorder never heard of has no session at
all, so only `<run>.lost` (and the recorder's log) names it. Bytes forwarded after the last mark (at most `INTERVAL` of traffic) are not counted.

Who is alive is told by POSIX record locks, which the kernel releases when their process dies: the proxy holds
byte 0 of the marks file, its recorder byte 1. A clean stop removes the file.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

INTERVAL = 0.1  # seconds between two marks while copies are in flight
MARKS_SUFFIX = ".marks"
LOST_SUFFIX = ".lost"
_PROXY, _RECORDER = 0, 1  # the byte each process locks


def _lock(fd: int, byte: int) -> None:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)


class MarkWriter:
    """The proxy's marks file (created, locked, removed by the proxy)."""

    def __init__(self, journal_dir: Path) -> None:
        journal_dir.mkdir(parents=True, exist_ok=True)
        self.path = journal_dir / f"proxy-{os.getpid()}-{time.time_ns()}{MARKS_SUFFIX}"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        _lock(self._fd, _PROXY)
        self.write({})

    def write(self, forwarded: dict[int, int], unopened: set[int] | frozenset[int] = frozenset()) -> None:
        """Replace the mark. The line comes first and is whole before the file is cut to it, so a reader after
        a kill in between still finds the newest complete line."""
        line = orjson.dumps({"pid": os.getpid(), "at": time.time_ns(), "forwarded": forwarded,
                             "unopened": sorted(unopened)}, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        os.pwrite(self._fd, line, 0)
        os.ftruncate(self._fd, len(line))

    def remove(self) -> None:
        """A clean stop: the recorder finalized every session; nothing is left to count."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def hold(path: Path) -> int:
    """The recorder's lock on its proxy's marks file (kept until the recorder exits); the descriptor."""
    fd = os.open(path, os.O_RDWR)
    _lock(fd, _RECORDER)
    return fd


def read(path: Path) -> tuple[dict[int, int], set[int], int | None]:
    """(bytes forwarded per connection, connections not yet opened at the recorder, epoch ns of the mark) of
    a marks file; empty when unreadable."""
    try:
        line = path.read_bytes().split(b"\n", 1)[0]
        mark = orjson.loads(line)
        return ({int(k): int(v) for k, v in mark["forwarded"].items()}, {int(c) for c in mark.get("unopened", [])},
                int(mark["at"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        return {}, set(), None


def iso(ns: int | None) -> str | None:
    return None if ns is None else dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat()


def write_losses(marks_path: Path, losses: list[dict[str, Any]]) -> None:
    """The recorder's report of what its dead proxy lost (for `recover`), then the marks file goes."""
    if losses:
        lost = marks_path.with_suffix(LOST_SUFFIX)
        tmp = lost.with_name(lost.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as f:
            f.write(b"".join(orjson.dumps(loss) + b"\n" for loss in losses))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, lost)
    with contextlib.suppress(OSError):
        os.unlink(marks_path)


@dataclass(frozen=True)
class Leftovers:
    """What `recover` finds of proxies that did not stop cleanly: `losses` (one line per session, counted),
    `unfinished` (recorders still writing for a dead proxy: try again later) and `dead` (a proxy and its
    recorder both died: sessions may miss their last frames, uncounted)."""

    losses: list[str]
    unfinished: list[str]
    dead: list[str]


def _free(fd: int, byte: int) -> bool:
    """Is the lock on `byte` free (its process gone)? Takes and drops it."""
    try:
        _lock(fd, byte)
    except OSError:
        return False
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte)
    return True


def leftovers(out: Path) -> Leftovers:
    """Report (and remove) the loss reports under `out`, and look at the marks of proxies that died."""
    journal_dir = Path(out) / "journal"
    losses: list[str] = []
    unfinished: list[str] = []
    dead: list[str] = []
    if not journal_dir.is_dir():
        return Leftovers(losses, unfinished, dead)
    for marks in sorted(journal_dir.glob(f"*{MARKS_SUFFIX}")):
        try:
            fd = os.open(marks, os.O_RDWR)
        except OSError:
            continue  # removed meanwhile: a clean stop
        try:
            if not _free(fd, _PROXY):
                continue  # a live proxy
            _, _, at = read(marks)
            if not _free(fd, _RECORDER):
                unfinished.append(f"{marks.name}: the proxy died (last mark {iso(at)}); its recorder is still "
                                  "writing its sessions: run `rtreplay recover` again once it has exited")
                continue
            if not marks.exists():
                continue  # its recorder finished meanwhile (its loss report, if any, is read below)
            dead.append(f"{marks.name}: the proxy and its recorder both died (last mark {iso(at)}): the sessions "
                        "recovered from their journals may miss their last frames (not counted)")
            with contextlib.suppress(OSError):
                marks.unlink()
        finally:
            os.close(fd)
    for lost in sorted(journal_dir.glob(f"*{LOST_SUFFIX}")):
        try:
            entries = [orjson.loads(line) for line in lost.read_bytes().splitlines() if line.strip()]
        except (OSError, orjson.JSONDecodeError) as exc:
            losses.append(f"{lost}: unreadable loss report ({exc}); kept")
            continue
        for e in entries:
            who = f"session {e['session_id']}" if e.get("session_id") else f"connection {e.get('conn')} (no session)"
            losses.append(f"{who}: at least {e.get('lost_wire_bytes', 0):,} wire bytes forwarded were not recorded "
                          f"(the proxy died holding them for a lagging recorder; counted in a proxy.error)")
        lost.unlink()
    return Leftovers(losses, unfinished, dead)
