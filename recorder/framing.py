"""The wire between the forwarding process and its recorder process: length-prefixed binary frames.

Every frame is one fixed header, `HEADER` (little-endian: connection id u32, kind u8, direction u8,
monotonic ns i64, epoch ns i64, payload length u32), then the payload. No I/O here.

Forwarding process -> recorder (`conn` numbers one app connection; `mono_ns`/`wall_ns` are taken when the
proxy received the bytes or saw the fact):
  OPEN    the upgrade request was read: JSON {method, path, query, client, upstream, headers, auth_added},
          `headers` as forwarded upstream — secrets included: this frame exists in memory only and the
          recorder redacts before a record exists
  DATA    a chunk of bytes exactly as forwarded, `direction` CLIENT or SERVER; the server stream starts
          with the upstream's HTTP answer, the client stream right after the upgrade request
  ERROR   JSON {error, …}: something went wrong in the proxy for this connection (e.g. upstream unreachable)
  CLOSE   JSON {first_disconnect}: both sockets are gone; nothing more comes for `conn`
  REFUSED (conn 0) JSON {reason, status, peer, path, count, first, last}: connections refused before
          they became sessions (`rtreplay.recorder.refusals`: one by one, then counted summaries)
  SECRET  (conn 0) a header value the proxy adds itself (Authorization from the environment): its secret
          is scrubbed from every session
Recorder -> forwarding process (conn 0):
  READY   leftover journals are recovered; recording can start
  PROBLEM JSON {lost_records, error}: records lost to a failed write (or a file that could not be written)
"""
from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("<IBBqqI")
MAX_PAYLOAD = (1 << 32) - 1

OPEN, DATA, ERROR, CLOSE, SECRET, REFUSED = 1, 2, 3, 4, 5, 6
READY, PROBLEM = 10, 11

NO_DIRECTION, CLIENT, SERVER = 0, 1, 2


class FramingError(ValueError):
    """The byte stream is not a sequence of frames (a bug on the other side, not bad user input)."""


class Frame(NamedTuple):
    conn: int
    kind: int
    direction: int
    mono_ns: int
    wall_ns: int
    payload: bytes


def header(conn: int, kind: int, direction: int, mono_ns: int, wall_ns: int, length: int) -> bytes:
    """The header of a frame whose payload is `length` bytes (send the payload right after it)."""
    if length > MAX_PAYLOAD:
        raise FramingError(f"payload of {length} bytes is too large for one frame")
    return HEADER.pack(conn, kind, direction, mono_ns, wall_ns, length)


def encode(conn: int, kind: int, direction: int, mono_ns: int, wall_ns: int, payload: bytes) -> bytes:
    return header(conn, kind, direction, mono_ns, wall_ns, len(payload)) + payload


class Decoder:
    """Splits a byte stream, fed in arbitrary pieces, into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            source = data  # the usual case, a read of whole frames: no copy into the buffer
        frames: list[Frame] = []
        at, end, size = 0, len(source), HEADER.size
        with memoryview(source) as view:  # payloads are copied once, straight out of `source`
            while end - at >= size:
                conn, kind, direction, mono, wall, length = HEADER.unpack_from(source, at)
                if end - at - size < length:
                    break
                start = at + size
                at = start + length
                frames.append(Frame(conn, kind, direction, mono, wall, view[start:at].tobytes()))
        if source is buffer:
            del buffer[:at]
        elif at < end:
            buffer += data[at:]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at end of stream means it was cut short)."""
        return len(self._buffer)
