"""The upstream watchdog behind `--upstream-timeout`: a silent upstream gets the app a close, not a hang.

Armed when the app sends something (or when the upgrade request goes upstream) and disarmed by any byte
from the upstream — a pong counts — it fires when the upstream stayed silent for `timeout` seconds after
the app last spoke. The proxy then tells the app in the protocol's own terms: an HTTP 504 if the upstream
never answered the upgrade, else a close frame (1011) — but only between two upstream frames, which
`FrameBoundary` tracks by reading frame headers (payloads are skipped, not parsed), since a close frame
injected into a half-relayed frame would corrupt the stream; mid-frame the app's connection is dropped.
Only sessions of a proxy with a timeout pay for this.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

HEAD_END = b"\r\n\r\n"


def close_frame(code: int, reason: str, mask: bytes | None = None) -> bytes:
    """A WebSocket close frame: unmasked (server to client), or masked with the 4 bytes `mask` (client to server)."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    if mask is None:
        return bytes([0x88, len(payload)]) + payload
    return bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class FrameBoundary:
    """Follows a byte stream — an HTTP head (unless `in_head` is False), then frames — to tell where frames end."""

    def __init__(self, in_head: bool = True) -> None:
        self.in_head = in_head  # still in the HTTP head (the upgrade response; a request's is consumed elsewhere)
        self.opcode = -1  # the opcode of the last frame whose header was read (8: close)
        self._tail = b""  # head: the last bytes seen, to find a split "\r\n\r\n"; frames: a partial header
        self._left = 0  # payload bytes of the current frame still to come

    @property
    def between_frames(self) -> bool:
        return not self.in_head and not self._tail and not self._left

    def feed(self, data: bytes) -> None:
        i = 0
        if self.in_head:
            seen = self._tail + data
            end = seen.find(HEAD_END)
            if end < 0:
                self._tail = seen[-3:]
                return
            self.in_head, self._tail = False, b""
            i = end + len(HEAD_END) - (len(seen) - len(data))
        while i < len(data):
            if self._left:
                take = min(self._left, len(data) - i)
                self._left -= take
                i += take
                continue
            chunk = data[i : i + 14 - len(self._tail)]
            head = self._tail + chunk
            size = _header_size(head)
            if size is None or len(head) < size:
                self._tail = head  # the data ran out inside a header
                return
            i += size - len(self._tail)
            self._tail = b""
            self._left = _payload_size(head)
            self.opcode = head[0] & 0x0F


def _header_size(head: bytes) -> int | None:
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    return 2 + (0 if length < 126 else 2 if length == 126 else 8) + (4 if head[1] & 0x80 else 0)


def _payload_size(head: bytes) -> int:
    length = head[1] & 0x7F
    if length == 126:
        return int.from_bytes(head[2:4], "big")
    if length == 127:
        return int.from_bytes(head[2:10], "big")
    return length


class Watchdog:
    """One session's timer; `on_timeout(boundary)` is called once if the upstream goes silent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float,
                 on_timeout: Callable[[FrameBoundary], None]) -> None:
        self.loop = loop
        self.timeout = timeout
        self.boundary = FrameBoundary()
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None

    def waiting(self) -> None:
        """The app (or the proxy, for the upgrade) sent something: start the clock unless it runs."""
        if self._timer is None:
            self._timer = self.loop.call_later(self.timeout, self._fire)

    def upstream_data(self, data: bytes) -> None:
        self.boundary.feed(data)
        self.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._on_timeout(self.boundary)
