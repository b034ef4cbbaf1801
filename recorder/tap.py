"""Reading a copy of a WebSocket connection's bytes, without taking part in it. No I/O.

The proxy forwards bytes unchanged and feeds a copy of each direction here:
  - `split_head` / `parse_head` read the HTTP upgrade request and the upstream's answer;
  - `rewrite_request` points the request at the upstream (Host, optional Authorization);
  - `StreamTap` parses one direction's frames as they come (unmasks, inflates permessage-deflate with
    zlib as negotiated, reassembles fragments), yields complete messages and close frames, and accounts
    for every byte it cannot record as a message (`Unparsed`, `Lost`). Pings and pongs are not events.

The tap is its own small parser rather than websockets' `Protocol`: it never answers, never stops at the
first protocol error (a frame's header says where the next one starts, so it records the bad frame and
goes on), bounds what it holds and inflates, and costs a fraction per message (the recorder's hot path).
tests/recorder/test_tap_parser.py holds it equal to websockets' `Protocol` on valid streams.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from websockets.exceptions import InvalidHeader, ProtocolError
from websockets.frames import Close
from websockets.headers import parse_extension

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

MAX_HEAD = 64 * 1024  # an HTTP head larger than this is refused


class HeadError(ValueError):
    """An HTTP request or response head that cannot be parsed."""


@dataclass
class Head:
    """An HTTP/1.1 start line and its headers, in order, as sent (latin-1 decoded)."""

    start_line: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        """All values of header `name` (case-insensitive), joined with ", "; None when absent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def encode(self) -> bytes:
        lines = [self.start_line] + [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head including its blank line, the bytes after it), or None while the head is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise HeadError("HTTP head too large")
        return None
    return buffer[: end + 4], buffer[end + 4:]


def parse_head(head: bytes) -> Head:
    lines = head.decode("latin-1").split("\r\n")
    if len(lines[0].split(" ")) < 2:
        raise HeadError(f"bad start line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HeadError(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return Head(lines[0], headers)


def request_target(head: Head) -> tuple[str, str, str]:
    """(method, path, query) of a request head."""
    method, target = head.start_line.split(" ")[:2]
    path, _, query = target.partition("?")
    return method, path, query


def status_of(head: Head) -> tuple[int, str]:
    """(status code, reason phrase) of a response head."""
    parts = head.start_line.split(" ", 2)
    try:
        return int(parts[1]), parts[2] if len(parts) > 2 else ""
    except ValueError:
        raise HeadError(f"bad status line {head.start_line[:80]!r}") from None


def rewrite_request(head: Head, host: str, path_prefix: str = "", authorization: str | None = None) -> Head:
    """The request as sent upstream: Host is `host`, the path gets `path_prefix`, and `authorization`
    (a full header value) is added only when the client sent no Authorization header."""
    method, target, *rest = head.start_line.split(" ")
    headers = [(k, host if k.lower() == "host" else v) for k, v in head.headers]
    if authorization is not None and head.get("authorization") is None:
        headers.append(("Authorization", authorization))
    return Head(" ".join([method, path_prefix + target, *rest]), headers)


# -- one direction's frames (RFC 6455, RFC 7692) ----------------------------------------------------------

MAX_MESSAGE = 16 << 20  # bytes of one message (after inflating) that are recorded; above: a counted loss
MAX_UNFINISHED = 64 << 20  # bytes of unfinished messages all taps sharing a `Budget` may hold at once
KEEP_UNPARSED = 64 << 10  # payload bytes kept of a frame that breaks the protocol (the rest is counted)
_EMPTY_BLOCK = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: the tail the sender removed from every message
_NOTHING, _MESSAGE, _CONTROL, _UNPARSED = range(4)


class Message(NamedTuple):
    """One complete data message, reassembled and inflated."""

    is_text: bool
    data: bytes


class Unparsed(NamedTuple):
    """A frame that breaks RFC 6455/7692 but passed anyway: why, its opcode, its payload as sent (unmasked,
    not inflated, the first `KEEP_UNPARSED` bytes) and its full payload length."""

    error: str
    opcode: int
    data: bytes
    size: int


class Lost(NamedTuple):
    """Bytes that passed but are not recorded, and why: a message over the size cap or the shared budget,
    one that cannot be inflated, or a stream that ended inside a frame. `size` is the message's inflated
    length when known (else None)."""

    error: str
    wire_bytes: int
    size: int | None


class Budget:
    """Bytes of unfinished messages held by the taps that share it (one per recorder process)."""

    def __init__(self, limit: int = MAX_UNFINISHED) -> None:
        self.limit = limit
        self.used = 0


class StreamTap:
    """Parses one direction of an open WebSocket connection from a copy of its bytes, as they come.

    `masked` is True for the client-to-server direction. `feed` yields, in stream order, `Message`s,
    `Close`s (pings and pongs are not events: dropped), and for whatever cannot be recorded as a message,
    `Unparsed` (a frame breaking the protocol: recorded raw, then parsing goes on at the next frame, whose
    place the length in the header gives) or `Lost` (counted, with the reason). Memory is bounded: a
    message is held only up to `max_message` bytes and while the shared `budget` allows, and inflating
    stops there (zlib's `max_length`), so a small compressed frame cannot grow into a huge one.
    `feed` is a generator: consume it whole before feeding again.
    """

    def __init__(self, masked: bool, max_message: int = MAX_MESSAGE, budget: Budget | None = None) -> None:
        self.side = "client" if masked else "server"
        self.max_message = max_message
        self.budget = budget or Budget()
        self.error: str | None = None  # an unreadable extension negotiation
        self.position = 0  # stream bytes parsed
        self._deflate = False
        self._takeover = True  # the sender keeps its compression context between messages
        self._decoder: Any = None
        self._broken: str | None = None  # why this direction's compressed messages can no longer be inflated
        self._header = b""  # the start of a frame header split across chunks
        self._frame_at = 0  # stream offsets where the current frame and message began
        self._message_at = 0
        # The frame being read.
        self._left = 0  # payload bytes still to come
        self._target = _NOTHING
        self._fin = True
        self._opcode = 0
        self._mask: bytes | None = None
        self._mask_at = 0
        self._error = ""
        self._raw: list[bytes] = []  # payload of a control or unparsed frame
        self._raw_size = 0
        # The message being assembled.
        self._in_message = False
        self._is_text = False
        self._compressed = False
        self._parts: list[bytes] = []
        self._size = 0  # message bytes (inflated) so far
        self._wire = 0  # payload bytes on the wire so far
        self._cut: str | None = None  # why this message is not recorded

    def enable_deflate(self, extensions_header: str | None) -> bool:
        """Inflate as negotiated by the upstream's `Sec-WebSocket-Extensions` answer; True if enabled."""
        if not extensions_header:
            return False
        try:
            extensions = parse_extension(extensions_header)
        except InvalidHeader:
            self.error = f"unreadable Sec-WebSocket-Extensions {extensions_header[:80]!r}"
            return False
        for name, params in extensions:
            if name == "permessage-deflate":
                # Inflating with the largest window reads any smaller window the sender chose.
                self._deflate = True
                self._takeover = f"{self.side}_no_context_takeover" not in dict(params)
                return True
        return False

    def feed(self, data: bytes) -> Iterator[Message | Close | Unparsed | Lost]:
        """What `data` (plus what earlier calls left pending) completes, in stream order."""
        start = self.position - len(self._header)  # stream offset of data[0]
        if self._header:
            data, self._header = self._header + data, b""
        view = memoryview(data)
        at, end = 0, len(data)
        self.position = start + end
        while at < end:
            left = self._left
            if left:
                n = end - at if end - at < left else left
                self._left = left - n
                yield from self._payload(view[at:at + n])
                at += n
                continue
            # A frame header: 2 bytes, then an extended length (2 or 8) and a mask (4) if present.
            if end - at < 2:
                self._header = bytes(view[at:])
                break
            b0, b1 = data[at], data[at + 1]
            length, size = b1 & 0x7F, 2
            if length >= 126:
                size = 4 if length == 126 else 10
            if b1 & 0x80:
                size += 4
            if end - at < size:
                self._header = bytes(view[at:])
                break
            if length == 126:
                length = int.from_bytes(data[at + 2:at + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[at + 2:at + 10], "big")
            if (b0 == 0x81 or b0 == 0x82) and not self._in_message and end - at - size >= length \
                    and length <= self.max_message:
                # The usual frame: a whole uncompressed message, all here. No state to keep.
                start_at, at = at + size, at + size + length
                payload = view[start_at:at]
                yield Message(b0 == 0x81, apply_mask(payload, data[start_at - 4:start_at]) if b1 & 0x80
                              else bytes(payload))
                continue
            self._mask = data[at + size - 4:at + size] if b1 & 0x80 else None
            self._mask_at = 0
            self._start(b0, length, start + at)
            at += size
            self._left = length
            if not length:
                yield from self._payload(view[at:at])

    def end(self) -> list[Lost]:
        """The stream is over: what an unfinished frame or message held is lost (counted)."""
        lost = []
        if self._header or self._left or self._in_message:
            start = self._message_at if self._in_message else self._frame_at if self._left else \
                self.position - len(self._header)
            lost.append(Lost(f"the {self.side} stream ended inside a frame ({self._left} payload bytes missing)",
                             self.position - start, None))
        self._release()
        return lost

    # -- inside a frame -----------------------------------------------------------------------------------

    def _start(self, b0: int, length: int, offset: int) -> None:
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        self._fin, self._opcode, self._frame_at = bool(fin), opcode, offset
        error = ""
        if opcode >= 8:
            if opcode > 10:
                error = f"reserved opcode {opcode}"
            elif not fin or length > 125 or rsv:
                error = "control frame fragmented, over 125 bytes or with reserved bits set"
        elif opcode > 2:
            error = f"reserved opcode {opcode}"
        elif rsv & 0x30 or (rsv and (opcode == 0 or not self._deflate)):
            error = f"reserved bits {rsv >> 4:03b} set"
        elif opcode == 0 and not self._in_message:
            error = "continuation frame with no message to continue"
        elif opcode and self._in_message:
            error = "new message before the previous one's last fragment"
        if error:
            self._target, self._error = _UNPARSED, f"{error} (frame at {self.side} stream byte {offset})"
        elif opcode >= 8:
            self._target = _CONTROL
        else:
            self._target = _MESSAGE
            if opcode:
                self._in_message, self._is_text, self._compressed = True, opcode == 1, bool(rsv)
                self._message_at = offset
                if self._compressed and (self._decoder is None or not self._takeover) and self._broken is None:
                    self._decoder = zlib.decompressobj(-15)

    def _unmask(self, piece: memoryview) -> bytes:
        mask = self._mask
        if mask is None:
            return bytes(piece)
        offset = self._mask_at & 3
        self._mask_at += len(piece)
        return apply_mask(piece, mask[offset:] + mask[:offset] if offset else mask)

    def _payload(self, piece: memoryview) -> Iterator[Message | Close | Unparsed | Lost]:
        last = not self._left
        target = self._target
        if target == _MESSAGE:
            self._wire += len(piece)
            if self._cut is None:
                chunk = self._unmask(piece)
                if self._compressed:
                    chunk = self._inflate(chunk, last and self._fin)
                if self._cut is None:
                    self._hold(chunk)
            if last and self._fin:
                yield self._finish()
            return
        if self._raw_size < KEEP_UNPARSED:
            self._raw.append(self._unmask(piece[:KEEP_UNPARSED - self._raw_size]))
        self._raw_size += len(piece)
        if not last:
            return
        raw, size = b"".join(self._raw), self._raw_size
        self._raw, self._raw_size = [], 0
        if target == _CONTROL:
            if self._opcode != 8:
                return  # ping, pong
            try:
                yield Close.parse(raw)
                return
            except (ProtocolError, UnicodeDecodeError) as exc:
                self._error = f"bad close frame ({exc}) before {self.side} stream byte {self.position}"
        yield Unparsed(self._error, self._opcode, raw, size)

    def _inflate(self, chunk: bytes, final: bool) -> bytes:
        if self._broken is not None:
            self._cut = self._broken
            return b""
        decoder = self._decoder
        room = self.max_message - self._size
        try:
            out = decoder.decompress(chunk, room + 1)
            if final and not decoder.unconsumed_tail and len(out) <= room:
                out += decoder.decompress(_EMPTY_BLOCK, room + 1 - len(out))
            if decoder.eof:  # a sender may end a message with a final block: the next starts afresh
                self._decoder = zlib.decompressobj(-15)
        except zlib.error as exc:
            self._cut_message(f"cannot be inflated ({exc})")
            return b""
        if len(out) > room or decoder.unconsumed_tail:
            self._size += len(out)
            # Inflating on only to count would cost the CPU the cap saves; with context takeover the next
            # messages refer to what was skipped, so they cannot be inflated either.
            self._cut_message(f"over the {self.max_message} byte cap")
            return b""
        return out

    def _hold(self, chunk: bytes) -> None:
        n = len(chunk)
        if self._size + n > self.max_message:
            self._size += n
            self._cut_message(f"over the {self.max_message} byte cap")
        elif self.budget.used + n > self.budget.limit:
            self._size += n
            self._cut_message(f"over the recorder's {self.budget.limit} byte budget for unfinished messages")
        else:
            self._parts.append(chunk)
            self._size += n
            self.budget.used += n

    def _cut_message(self, why: str) -> None:
        self._cut = why
        self._release()
        if self._compressed and self._takeover and self._broken is None:
            self._broken = f"not inflated: an earlier compressed {self.side} message was cut ({why})"
            self._decoder = None

    def _release(self) -> None:
        self.budget.used -= sum(map(len, self._parts))
        self._parts = []

    def _finish(self) -> Message | Lost:
        parts, size, cut = self._parts, self._size, self._cut
        self._in_message, self._parts, self._cut = False, [], None
        wire, self._wire, self._size = self._wire, 0, 0
        if cut is not None:
            # Inflating stops at a cut: the size of a compressed message is then unknown.
            return Lost(f"{self.side} message {cut}", wire, None if self._compressed else wire)
        self.budget.used -= size
        return Message(self._is_text, parts[0] if len(parts) == 1 else b"".join(parts))
