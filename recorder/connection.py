"""One client connection of the recording proxy: its two relaying sides and the session that joins them.

`Side` is an asyncio Protocol per direction: it writes each chunk to the other side first, then hands a copy to
the recorder link. `Session` reads the app's upgrade request (bounded in time and size), rewrites it for the
upstream, connects, and ends both sides together; `Proxy` (`rtreplay.recorder.proxy`) owns the sessions.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rtreplay.recorder import framing, refusals, tap
from rtreplay.recorder.watchdog import FrameBoundary, Watchdog, close_frame

if TYPE_CHECKING:
    from rtreplay.recorder.proxy import Proxy

log = logging.getLogger("rtreplay.recorder.proxy")

CONNECT_TIMEOUT = 15.0
GOING_AWAY = "proxy stopped"  # the reason in the 1001 close frames sent to both sides when the proxy stops
GOODBYE_GRACE = 2.0  # seconds the peers get to answer those close frames before their connections are closed
HEAD_TIMEOUT = 10.0  # seconds an app has to send its whole upgrade request
MAX_HANDSHAKES = 256  # connections still sending their upgrade request; more are refused (503) and counted
# Where the operator's key may go (`--auth-env`): WebSocket upgrades to a Realtime endpoint, nothing else.
REALTIME_PATHS = ("/v1/realtime", "/openai/realtime", "/openai/v1/realtime")
CLIENT, SERVER = framing.CLIENT, framing.SERVER
_NAMES = {CLIENT: "client", SERVER: "server"}


@dataclass(frozen=True)
class Upstream:
    """Where sessions go: `ws://` or `wss://` host, port and an optional path prefix."""

    url: str
    host: str
    port: int
    tls: bool
    path_prefix: str

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"upstream must be a ws:// or wss:// URL, not {url!r}")
        tls = parts.scheme == "wss"
        port = parts.port or (443 if tls else 80)
        return cls(url, parts.hostname, port, tls, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _http_error(status: str, message: str) -> bytes:
    body = f"rtreplay proxy: {message}\n".encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class Side(asyncio.Protocol):
    """One TCP connection of a session: the app's (`CLIENT`) or the upstream's (`SERVER`)."""

    def __init__(self, session: Session, direction: int) -> None:
        self.session = session
        self.direction = direction
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.relaying = direction == SERVER  # the client's side relays once its upgrade request is sent
        # Where the frames of the stream this side receives end, so that stopping the proxy can put a close
        # frame between two of them (the client's upgrade request is consumed by the handshake).
        self.frames = FrameBoundary(in_head=direction == SERVER)
        self.closed = False
        self.eof_in = self.eof_out = False
        self._pauses: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.session.proxy.link.paused:
            self.pause("recorder")

    def data_received(self, data: bytes) -> None:
        if self.relaying:
            mono, wall = time.monotonic_ns(), time.time_ns()
            if self.session.stopping:  # the proxy said goodbye to both sides: record the answer, forward nothing
                self.session.goodbye_answer(self, data, mono, wall)
                return
            self.peer.transport.write(data)  # type: ignore[union-attr]  # forward first, then copy
            self.frames.feed(data)
            self.session.link.data(self.session.conn, self.direction, data, mono, wall)
            watchdog = self.session.watchdog
            if watchdog is not None:
                watchdog.upstream_data(data) if self.direction == SERVER else watchdog.waiting()
        else:
            self.session.handshake(self, data)

    def eof_received(self) -> bool:
        return self.session.eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.session.lost(self)

    # Our write buffer is full: stop reading what would be written to it.
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause("peer-buffer")

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume("peer-buffer")

    def pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class Refused(asyncio.Protocol):
    """A connection over the half-open handshake cap: answered 503 at once, never a session."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.proxy.count(f"more than {self.proxy.max_handshakes} upgrade requests in progress (503)", 503,
                         transport.get_extra_info("peername"))
        transport.write(_http_error("503 Service Unavailable", "too many upgrade requests in progress"))  # type: ignore
        transport.close()


class Session:
    """One client connection: its upgrade request, the relay, and the lifecycle facts for the recorder."""

    def __init__(self, proxy: Proxy, conn: int) -> None:
        self.proxy = proxy
        self.link = proxy.link
        self.conn = conn
        self.client = Side(self, CLIENT)
        self.upstream: Side | None = None
        self.recording = False  # True once the recorder was told about this connection (OPEN)
        self._buffer = b""  # the upgrade request until it is complete
        self._request: tap.Head | None = None
        self._early: list[tuple[bytes, int, int]] = []  # client bytes received before the upstream connected
        self._first_gone: int | None = None
        self._dialing = False  # the upstream connection is being opened
        self._ended = False
        self.stopping = False  # the proxy is stopping: both sides were sent 1001 going away (or dropped)
        timeout = proxy.upstream_timeout
        self.watchdog = Watchdog(proxy.loop, timeout, self._upstream_silent) if timeout else None
        self._head_timer: asyncio.TimerHandle | None = proxy.loop.call_later(proxy.head_timeout, self._head_late)
        proxy.handshaking += 1

    def head_done(self) -> None:
        """The upgrade request is complete (or refused, or the app left): no longer a half-open handshake."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            self.proxy.handshaking -= 1

    def _head_late(self) -> None:
        self._head_timer = None
        self.proxy.handshaking -= 1
        self.proxy.count("upgrade request not complete in time (408)", 408, self._peer(),
                         refusals.request_path(self._buffer))
        if self.client.transport is not None and not self.client.closed:
            self.client.transport.write(_http_error("408 Request Timeout", "upgrade request not complete in time"))
            self.client.close()

    def handshake(self, side: Side, data: bytes) -> None:
        if self._request is not None:  # bytes sent while the upstream connection is being opened
            self._early.append((data, time.monotonic_ns(), time.time_ns()))
            return
        self._buffer += data
        try:
            split = tap.split_head(self._buffer)
            if split is None:
                if b"\n\n" in self._buffer:  # a head ended with bare LFs would otherwise wait forever
                    raise tap.HeadError("HTTP head lines must end with CRLF")
                return
            head, rest = split
            self._request = tap.parse_head(head)
            tap.request_target(self._request)
        except (tap.HeadError, ValueError) as exc:
            self.head_done()
            self.proxy.count("bad upgrade request (400)", 400, self._peer(), refusals.request_path(self._buffer))
            side.transport.write(_http_error("400 Bad Request", str(exc)))  # type: ignore[union-attr]
            side.transport.close()  # type: ignore[union-attr]
            return
        self.head_done()
        self._buffer = b""
        if self.link.failed:
            side.transport.write(_http_error("503 Service Unavailable", self.link.failed))  # type: ignore
            side.transport.close()  # type: ignore[union-attr]
            return
        self.link.send_json(self.conn, framing.OPEN, self._open_info())
        self.recording = True
        if rest:
            self._early.append((rest, time.monotonic_ns(), time.time_ns()))
        side.pause("connecting")
        self._dialing = True
        self.proxy.spawn(self._connect())

    def _peer(self) -> Any:
        return self.client.transport.get_extra_info("peername") if self.client.transport else None

    def _open_info(self) -> dict[str, Any]:
        assert self._request is not None
        method, path, query = tap.request_target(self._request)
        peer = self.client.transport.get_extra_info("peername") if self.client.transport else None
        forwarded = self.proxy.rewrite(self._request)
        return {
            "method": method, "path": path, "query": query,
            "client": f"{peer[0]}:{peer[1]}" if peer else None,
            "upstream": self.proxy.upstream.url,
            "headers": forwarded.headers,
            "auth_added": forwarded.get("authorization") != self._request.get("authorization"),
            "origin_refused": self.proxy.origin_refused(self._request),
        }

    async def _connect(self) -> None:
        upstream = self.proxy.upstream
        try:
            _, side = await asyncio.wait_for(self.proxy.loop.create_connection(
                lambda: Side(self, SERVER), upstream.host, upstream.port,
                ssl=self.proxy.ssl_context if upstream.tls else None,
                server_hostname=upstream.host if upstream.tls else None), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            self._dialing = False
            message = f"upstream {upstream.url} unreachable: {exc or type(exc).__name__}"
            self.link.send_json(self.conn, framing.ERROR, {"error": message, "status": 502})
            self.proxy.log(f"{message} (the app got HTTP 502)")
            if not self.client.closed:
                self.client.transport.write(_http_error("502 Bad Gateway", message))  # type: ignore[union-attr]
                self.client.close()
            else:
                self._end()
            return
        self._dialing = False
        self.upstream, side.peer, self.client.peer = side, self.client, side
        if self.client.closed:
            side.close()
            return
        early, self._early = self._early, []
        side.transport.write(self.proxy.rewrite(self._request).encode() + b"".join(c for c, _, _ in early))  # type: ignore
        for chunk, mono, wall in early:
            self.client.frames.feed(chunk)
            self.link.data(self.conn, CLIENT, chunk, mono, wall)
        if self.watchdog is not None:
            self.watchdog.waiting()  # the upgrade request is out: the upstream owes an answer
        self.client.relaying = True
        self.client.resume("connecting")

    def eof(self, side: Side) -> bool:
        """Pass a half-close on to the peer where the transport allows it; else close the peer."""
        side.eof_in = True
        peer = side.peer
        if peer is None or peer.closed or peer.transport is None:
            return False
        if peer.transport.can_write_eof() and side.transport.get_extra_info("sslcontext") is None:  # type: ignore
            peer.transport.write_eof()
            peer.eof_out = True
            if peer.eof_in:
                peer.close()
            return not side.eof_out
        peer.close()
        return False

    def lost(self, side: Side) -> None:
        self.head_done()
        self._first_gone = self._first_gone or side.direction
        if side.peer is not None and not self.stopping:  # stopping: the peer still owes its close frame
            side.peer.close()
        if self.client.closed and (self.upstream is None or self.upstream.closed) and not self._dialing:
            self._end()


    def _upstream_silent(self, boundary: FrameBoundary) -> None:
        """`--upstream-timeout` ran out: say so in the archive and to the app, then end the session."""
        timeout = self.proxy.upstream_timeout
        message = f"upstream timeout: nothing from the upstream for {timeout:g} s after the app last sent"
        self.proxy.log(message)
        self.link.send_json(self.conn, framing.ERROR, {"error": message, "upstream_timeout_s": timeout})
        if not self.client.closed and self.client.transport is not None:
            if boundary.in_head:
                self.client.transport.write(_http_error("504 Gateway Timeout", message))
            elif boundary.between_frames:
                self.client.transport.write(close_frame(1011, "upstream timeout"))
            self.client.close()  # mid-frame, a close frame would corrupt the stream: the app sees a drop
        if self.upstream is not None and self.upstream.transport is not None and not self.upstream.closed:
            self.upstream.transport.abort()  # it stopped reading too, perhaps: don't wait to flush

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.proxy.session_ended(self)
        if self.recording:
            first = _NAMES.get(self._first_gone) if self._first_gone else None
            info: dict[str, Any] = {"first_disconnect": first}
            if self.stopping:
                info["stopped"] = "the proxy was stopped: it sent 1001 going away to both sides"
            self.link.send_json(self.conn, framing.CLOSE, info)

    def pause(self, reason: str) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.pause(reason)

    def resume(self, reason: str) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.resume(reason)

    def shutdown(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    def going_away(self) -> None:
        """The proxy is stopping: send each side a 1001 close frame where its stream is between two frames (a
        close in mid-frame would corrupt it: that side's connection is dropped instead), forward nothing more,
        and close each side once its own close frame comes back (`goodbye_answer`)."""
        up = self.upstream
        if up is None or up.transport is None or not self.client.relaying or self.client.transport is None:
            self.shutdown()  # still in the handshake: nothing to close politely
            return
        self.stopping = True
        for side, boundary, frame in ((self.client, up.frames, close_frame(1001, GOING_AWAY)),
                                      (up, self.client.frames, close_frame(1001, GOING_AWAY, os.urandom(4)))):
            if side.closed:
                continue
            if boundary.between_frames and not side.eof_out:  # (after a half-close nothing more can be written)
                side.transport.write(frame)  # type: ignore[union-attr]
            else:
                side.close()

    def goodbye_answer(self, side: Side, data: bytes, mono: int, wall: int) -> None:
        """Bytes from `side` after the goodbye: recorded (its close frame is the answer); once its close frame
        ended, that side's connection is closed (the other side is closed when both are gone)."""
        self.link.data(self.conn, side.direction, data, mono, wall)
        side.frames.feed(data)
        if side.frames.between_frames and side.frames.opcode == 0x8:
            side.close()
