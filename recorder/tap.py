"""Reading a copy of a WebSocket connection's bytes, without taking part in it. No I/O.

The proxy forwards bytes unchanged and feeds a copy of each direction here:
  - `split_head` / `parse_head` read the HTTP upgrade request and the upstream's answer;
  - `rewrite_request` points the request at the upstream (Host, optional Authorization);
  - `StreamTap` parses one direction's frames with websockets' sans-I/O `Protocol` (which unmasks and,
    once `enable_deflate` is called, inflates permessage-deflate), reassembles fragmented messages, and
    yields complete messages and close frames. Pings and pongs are dropped: they are not events.

A tap never answers anything: whatever the `Protocol` wants to send (pongs, close echoes) is discarded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from websockets.exceptions import InvalidHeader
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Opcode
from websockets.headers import parse_extension
from websockets.protocol import CLIENT, OPEN, SERVER, Protocol

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


class Message(NamedTuple):
    """One complete data message, reassembled and inflated."""

    is_text: bool
    data: bytes


class StreamTap:
    """Parses one direction of an open WebSocket connection from a copy of its bytes.

    `masked` is True for the client-to-server direction (RFC 6455 clients mask their frames).
    After a protocol error the tap stops producing messages and `error` says why; forwarding is not its
    concern.
    """

    def __init__(self, masked: bool) -> None:
        self._masked = masked
        self._protocol = Protocol(SERVER if masked else CLIENT, state=OPEN, max_size=None)
        self._parts: list[bytes] = []
        self._is_text = False
        self.error: str | None = None

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
            if name != "permessage-deflate":
                continue
            values = dict(params)
            # The sender of this direction: the client if masked, else the server.
            sender, receiver = ("client", "server") if self._masked else ("server", "client")
            self._protocol.extensions = [PerMessageDeflate(
                remote_no_context_takeover=f"{sender}_no_context_takeover" in values,
                local_no_context_takeover=f"{receiver}_no_context_takeover" in values,
                remote_max_window_bits=int(values.get(f"{sender}_max_window_bits") or 15),
                local_max_window_bits=int(values.get(f"{receiver}_max_window_bits") or 15),
            )]
            return True
        return False

    def feed(self, data: bytes) -> list[Message | Close]:
        """Complete messages and close frames found in `data` (plus what earlier calls left pending)."""
        protocol = self._protocol
        if self.error is not None or protocol.parser_exc is not None:
            return []
        try:
            protocol.receive_data(data)
        except EOFError:  # data after the stream ended: nothing more to read
            return []
        protocol.data_to_send()  # a tap never replies
        out: list[Message | Close] = []
        for frame in protocol.events_received():
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    out.append(Message(opcode is Opcode.TEXT, bytes(frame.data)))
                else:
                    self._is_text = opcode is Opcode.TEXT
                    self._parts = [bytes(frame.data)]
            elif opcode is Opcode.CONT:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    out.append(Message(self._is_text, b"".join(self._parts)))
                    self._parts = []
            elif opcode is Opcode.CLOSE:
                out.append(Close.parse(frame.data))
        if protocol.parser_exc is not None:
            self.error = f"cannot parse the {'client' if self._masked else 'server'} stream: {protocol.parser_exc}"
        return out
