"""The recording proxy: a tap on a byte relay (DESIGN.md, "The proxy").

Per client connection, two asyncio Protocols (`_Side`) relay bytes between the app and the upstream.
After the HTTP upgrade request — rewritten only to point Host (and the path prefix) at the upstream and,
when configured, to add Authorization where the client sent none — every chunk is written to the other
side *first*, then a copy goes to a `tap.StreamTap` and the recorder. The handshake answer, extensions,
pings, close frames and HTTP rejections therefore reach the app as the upstream sent them.

Backpressure: a side whose write buffer is full pauses reading on its peer; the archive writer pauses
both sides of a session while its queue is over the high-water mark.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.frames import Close

from recorder import archive, redact, tap
from recorder.schema import CLIENT, PROXY_ERROR, PROXY_UPSTREAM_REJECTED, SERVER
from recorder.writer import ArchiveWriter, SessionHandle

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
MAX_REJECTION_BODY = 64 * 1024  # bytes of an upstream's rejection body kept in the record


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


def _close_info(close: Close | None) -> dict[str, Any] | None:
    return None if close is None else {"code": int(close.code), "reason": close.reason}


class _Side(asyncio.Protocol):
    """One TCP connection of a session: the app's (`CLIENT`) or the upstream's (`SERVER`)."""

    def __init__(self, session: _Session, direction: str) -> None:
        self.session = session
        self.direction = direction
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.relaying = False  # True once bytes go straight to the peer
        self.closed = False
        self.eof_in = self.eof_out = False
        self._pauses: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.relaying:
            self.peer.transport.write(data)  # type: ignore[union-attr]  # forward first, then record
            self.session.observe(self, data)
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


class _Session:
    """One client connection: handshake, relay, tap, and its lifecycle records."""

    def __init__(self, proxy: Proxy, client: _Side | None = None) -> None:
        self.proxy = proxy
        self.client = client or _Side(self, CLIENT)
        self.upstream: _Side | None = None
        self.handle: SessionHandle | None = None
        self._buffer = b""  # handshake bytes of whichever side is in its handshake
        self._request: tap.Head | None = None
        self._request_at = (0, 0)
        self._early: list[bytes] = []  # client bytes forwarded before the upgrade answer was read
        self._rejection: dict[str, Any] | None = None
        self._taps = {CLIENT: tap.StreamTap(masked=True), SERVER: tap.StreamTap(masked=False)}
        self._tap_ready = False
        self._tap_errors: set[str] = set()
        self._closes: dict[str, Close] = {}
        self._first_close: str | None = None
        self._first_gone: str | None = None
        self._ended = False

    # -- handshake -------------------------------------------------------------------------------------

    def handshake(self, side: _Side, data: bytes) -> None:
        if side.direction == SERVER:
            self._upstream_answer(data)
            return
        if self._request is not None:  # bytes sent while the upstream connection is being opened
            self._early.append(data)
            return
        self._buffer += data
        try:
            split = tap.split_head(self._buffer)
            if split is None:
                return
            head, rest = split
            self._request = tap.parse_head(head)
            tap.request_target(self._request)
        except (tap.HeadError, ValueError) as exc:
            side.transport.write(_http_error("400 Bad Request", str(exc)))  # type: ignore[union-attr]
            side.transport.close()  # type: ignore[union-attr]
            return
        self._buffer = b""
        self._request_at = (time.monotonic_ns(), time.time_ns())
        if rest:
            self._early.append(rest)
        side.pause("connecting")
        self.proxy.spawn(self._connect())

    def _open_info(self, subprotocol: str | None, extensions: str | None) -> dict[str, Any]:
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
            "subprotocol": subprotocol, "extensions": extensions,
        }

    def _start_recording(self, subprotocol: str | None, extensions: str | None) -> SessionHandle:
        self.handle = self.proxy.writer.open_session(self._open_info(subprotocol, extensions), at=self._request_at)
        self.handle.on_pause = self._pause_for_writer
        self.handle.on_resume = self._resume_for_writer
        return self.handle

    async def _connect(self) -> None:
        upstream = self.proxy.upstream
        try:
            _, side = await asyncio.wait_for(self.proxy.loop.create_connection(
                lambda: _Side(self, SERVER), upstream.host, upstream.port,
                ssl=self.proxy.ssl_context if upstream.tls else None,
                server_hostname=upstream.host if upstream.tls else None), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            message = f"upstream {upstream.url} unreachable: {exc or type(exc).__name__}"
            handle = self._start_recording(None, None)
            handle.lifecycle(PROXY_ERROR, {"error": message, "status": 502})
            if not self.client.closed:
                self.client.transport.write(_http_error("502 Bad Gateway", message))  # type: ignore[union-attr]
                self.client.close()
            else:
                self._end()
            return
        self.upstream, side.peer, self.client.peer = side, self.client, side
        if self.client.closed:
            side.close()
            return
        side.transport.write(self.proxy.rewrite(self._request).encode() + b"".join(self._early))  # type: ignore
        self.client.relaying = True
        self.client.resume("connecting")

    def _upstream_answer(self, data: bytes) -> None:
        self.client.transport.write(data)  # type: ignore[union-attr]  # relayed as sent, whatever it is
        if self._rejection is not None:
            body = self._rejection["body_bytes"]
            if len(body) < MAX_REJECTION_BODY:
                self._rejection["body_bytes"] = body + data[: MAX_REJECTION_BODY - len(body)]
            return
        self._buffer += data
        try:
            split = tap.split_head(self._buffer)
            if split is None:
                return
            head_bytes, rest = split
            head = tap.parse_head(head_bytes)
            status, reason = tap.status_of(head)
        except tap.HeadError as exc:
            self._start_recording(None, None).lifecycle(PROXY_ERROR, {"error": f"bad upstream answer: {exc}"})
            self._rejection = {"status": None, "reason": str(exc), "headers": [], "body_bytes": b""}
            return
        self._buffer = b""
        if status != 101:
            self._start_recording(None, None)
            self._rejection = {"status": status, "reason": reason, "headers": head.headers,
                               "body_bytes": rest[:MAX_REJECTION_BODY]}
            return
        extensions = head.get("sec-websocket-extensions")
        for stream_tap in self._taps.values():
            stream_tap.enable_deflate(extensions)
        self._start_recording(head.get("sec-websocket-protocol"), extensions)
        self._tap_ready = True
        self.upstream.relaying = True  # type: ignore[union-attr]
        early, self._early = b"".join(self._early), []
        if early:
            self.observe(self.client, early)
        if rest:
            self.observe(self.upstream, rest)  # type: ignore[arg-type]

    # -- relay -----------------------------------------------------------------------------------------

    def observe(self, side: _Side, data: bytes) -> None:
        """Record the messages in a copy of bytes already forwarded."""
        if not self._tap_ready:
            self._early.append(data)
            return
        direction = side.direction
        stream_tap = self._taps[direction]
        found = stream_tap.feed(data)
        if found:
            mono, wall = time.monotonic_ns(), time.time_ns()
            handle = self.handle
            for item in found:
                if type(item) is tap.Message:
                    handle.message(direction, item.data, item.is_text, mono, wall)  # type: ignore[union-attr]
                else:
                    self._closes.setdefault(direction, item)  # type: ignore[arg-type]
                    self._first_close = self._first_close or direction
        if stream_tap.error is not None and direction not in self._tap_errors:
            self._tap_errors.add(direction)
            self.handle.lifecycle(PROXY_ERROR, {"error": stream_tap.error})  # type: ignore[union-attr]

    def eof(self, side: _Side) -> bool:
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

    def lost(self, side: _Side) -> None:
        self._first_gone = self._first_gone or side.direction
        if side.peer is not None:
            side.peer.close()
        if self.client.closed and (self.upstream is None or self.upstream.closed) and not self._connecting():
            self._end()

    def _connecting(self) -> bool:
        return self._request is not None and self.upstream is None and self.handle is None

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.proxy.session_ended(self)
        if self.handle is None:
            return  # no request ever arrived: nothing to record
        if self._rejection is not None:
            body = self._rejection.pop("body_bytes")
            self.handle.lifecycle(PROXY_UPSTREAM_REJECTED, {**self._rejection, "body": body.decode("utf-8", "replace")})
        self.handle.close({
            "client": _close_info(self._closes.get(CLIENT)),
            "server": _close_info(self._closes.get(SERVER)),
            "first_close": self._first_close,
            "first_disconnect": self._first_gone,
        })

    def _pause_for_writer(self) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.pause("writer")

    def _resume_for_writer(self) -> None:
        for side in (self.client, self.upstream):
            if side is not None:
                side.resume("writer")

    def shutdown(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class Proxy:
    """Accepts app connections and relays each to `upstream`, recording through `writer`.

    `authorization` is a full header value added to upgrade requests that carry none. `ssl_context`
    verifies the upstream's certificate (default: the system's trust store, hostname checked).
    """

    def __init__(self, upstream: str, writer: ArchiveWriter, authorization: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.upstream = Upstream.parse(upstream)
        self.writer = writer
        self.authorization = authorization
        if authorization:
            for secret in redact.header_secrets("authorization", authorization):
                writer.known_secrets.append(secret)
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.sessions: set[_Session] = set()
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: asyncio.Server | None = None

    def rewrite(self, request: tap.Head) -> tap.Head:
        return tap.rewrite_request(request, self.upstream.host_header, self.upstream.path_prefix, self.authorization)

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self) -> _Side:
        session = _Session(self)
        self.sessions.add(session)
        self._idle.clear()
        return session.client

    def session_ended(self, session: _Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()

    async def listen(self, host: str, port: int) -> int:
        """Start accepting; returns the bound port."""
        self._server = await self.loop.create_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every session (recording its end), and wait for them to finish."""
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.shutdown()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            for session in list(self.sessions):
                session._end()
        for task in list(self._tasks):
            task.cancel()


def tune_interpreter() -> None:
    """For a process whose main job is the proxy: hand the GIL over sooner (0.5 ms, default 5 ms).

    The writer thread converts batches to Arrow while holding the GIL; with the default interval the
    event loop, coming back from a socket call, can wait up to 5 ms for it (measured: p99 latency).
    """
    import sys

    sys.setswitchinterval(0.0005)


@dataclass
class RunningProxy:
    url: str
    port: int
    proxy: Proxy
    writer: ArchiveWriter


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@contextlib.asynccontextmanager
async def running(upstream: str, out: Path, *, listen: str = "127.0.0.1:0", audio: str = "keep",
                  flush_interval: float = 0.5, auth_env: str | None = None, authorization: str | None = None,
                  ssl_context: ssl.SSLContext | None = None, high_water: int = 16 << 20) -> AsyncIterator[RunningProxy]:
    """Run a recording proxy until the block exits; every session is then finalized to Parquet.

    Leftover journals under `out` are recovered first. `auth_env` names an environment variable whose
    value is sent as `Authorization: Bearer <value>` when a client sends no Authorization header.
    """
    import os

    if auth_env is not None:
        key = os.environ.get(auth_env)
        if not key:
            raise ValueError(f"environment variable {auth_env} is not set")
        authorization = f"Bearer {key}"
    host, port = parse_listen(listen)
    await asyncio.to_thread(archive.recover, Path(out))
    async with ArchiveWriter(Path(out), audio=audio, flush_interval=flush_interval, high_water=high_water) as writer:
        proxy = Proxy(upstream, writer, authorization, ssl_context)
        bound = await proxy.listen(host, port)
        try:
            yield RunningProxy(f"ws://{host}:{bound}", bound, proxy, writer)
        finally:
            await proxy.stop()
