"""Connections refused before they became sessions, in the archive: a bounded record per proxy run.

A connection the proxy cuts before its upgrade request is complete (head timeout 408, bad head 400, more than
`--max-handshakes` in progress 503, no descriptor left to accept it) never becomes a session. Each one is
counted and logged by the proxy, and recorded here, so that an operator finds it with the normal readers.

Proxy side, `Refusals`: the first `INDIVIDUAL` refusals of each reason go to the recorder one by one (reason,
HTTP status, peer, request path); after that a flood is counted, and one summary per reason is sent every
`SUMMARY_EVERY` seconds and when the proxy stops. So the records grow by at most one per reason per
`SUMMARY_EVERY`, whatever a client does.

Recorder side, `RunLog`: one `proxy run` session per proxy run (opened at the first refusal) holding
`proxy.refused` records — payload `{reason, status, peer, path, count, first, last}` (`count` > 1 and
`first`/`last` times for a summary) — its path's query redacted by the allowlist like any `proxy.open`. It
has no `proxy.open` or `proxy.close` (it is finalized when the recorder ends). Readers recognise it by its
`proxy.refused` records (docs/definitions.md, "Sessions"): it is not an app session.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from rtreplay.recorder import redact
from rtreplay.recorder.schema import PROXY_REFUSED

INDIVIDUAL = 20  # refusals of one reason recorded one by one; then counted
SUMMARY_EVERY = 60.0  # seconds between two summaries of one reason's counted refusals
MAX_PATH = 256  # characters of a request path kept


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns // 1000 % 1_000_000:06d}Z"


class Refusals:
    """Decides what reaches the recorder: `send(info)` is called with each record (in the event loop)."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._recorded: Counter[str] = Counter()  # reason -> refusals recorded one by one
        self._pending: dict[str, dict[str, Any]] = {}  # reason -> summary being counted
        self._timer: asyncio.TimerHandle | None = None

    def note(self, reason: str, status: int | None, peer: str | None, path: str | None) -> None:
        now = time.time_ns()
        if self._recorded[reason] < INDIVIDUAL:
            self._recorded[reason] += 1
            self._send({"reason": reason, "status": status, "peer": peer, "path": path, "count": 1,
                        "first": _iso(now), "last": _iso(now)})
            return
        summary = self._pending.get(reason)
        if summary is None:
            summary = self._pending[reason] = {"reason": reason, "status": status, "peer": None, "path": None,
                                               "count": 0, "first": _iso(now)}
        summary["count"] += 1
        summary["last"] = _iso(now)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SUMMARY_EVERY, self.flush)

    def flush(self) -> None:
        """Send the summaries counted so far (on a timer, and when the proxy stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        for summary in pending.values():
            self._send(summary)


def request_path(head: bytes) -> str | None:
    """The target of an HTTP request line, best effort (a refused head may be anything), cut to `MAX_PATH`."""
    line = head.split(b"\n", 1)[0][: MAX_PATH * 4].decode("latin-1")
    parts = line.split()
    return parts[1][:MAX_PATH] if len(parts) >= 2 else None


def redacted(info: dict[str, Any]) -> dict[str, Any]:
    """A refusal as recorded: its path's query by the allowlist, like a session's `proxy.open`."""
    path = info.get("path")
    if isinstance(path, str):
        path, sep, query = path.partition("?")
        info = {**info, "path": path + sep + (redact.redact_query(query) if sep else "")}
    return info


class RunLog:
    """The recorder's `proxy run` session: opened by `open_session()` at the first refusal."""

    def __init__(self, open_session: Callable[[], Any]) -> None:
        self._open_session = open_session
        self._handle: Any = None

    def record(self, info: dict[str, Any], mono_ns: int, wall_ns: int) -> None:
        if self._handle is None:
            self._handle = self._open_session()
        self._handle.lifecycle(PROXY_REFUSED, redacted(info), mono_ns, wall_ns)
