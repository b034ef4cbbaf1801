"""The recording proxy: a byte relay that hands a copy of its traffic to a recorder process.

Per client connection (`rtreplay.recorder.connection`), two asyncio Protocols (`Side`) relay bytes between the
app and the upstream.
After the HTTP upgrade request — rewritten only to point Host (and the path prefix) at the upstream and,
when configured, to add Authorization where the client sent none — every chunk is written to the other
side *first*, then a copy goes to the recorder process (`rtreplay.recorder.link`, `rtreplay.recorder.child`), which does
all the parsing, redaction and writing. The handshake answer, extensions, pings, close frames and HTTP
rejections therefore reach the app as the upstream sent them, and the forwarding loop does no recording
work beyond copying a chunk into a socket.

Backpressure: a side whose write buffer is full pauses reading on its peer; a session that owes the
recorder too many copies is paused alone, and every session only at the link's hard bounds
(`rtreplay.recorder.link`: bytes buffered, or how long the oldest copy waits). If the
recorder process dies, every session is closed and new ones are refused (503): nothing passes unrecorded.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import itertools
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtreplay.recorder import framing, tap
from rtreplay.recorder.connection import (  # noqa: F401  (HEAD_TIMEOUT, MAX_HANDSHAKES: the CLI's defaults)
    GOODBYE_GRACE, HEAD_TIMEOUT, MAX_HANDSHAKES, REALTIME_PATHS, Refused, Session, Side, Upstream,
)
from rtreplay.recorder.link import RecorderLink
from rtreplay.recorder.refusals import Refusals

log = logging.getLogger(__name__)


class Proxy:
    """Accepts app connections and relays each to `upstream`, handing a copy to the recorder `link`.

    `authorization` is a full header value added to upgrade requests that carry none. `ssl_context`
    verifies the upstream's certificate (default: the system's trust store, hostname checked).
    `upstream_timeout` (seconds, off when None) ends a session whose upstream went silent
    (`rtreplay.recorder.watchdog`). `log` hears one line per session the proxy could not serve.
    """

    def __init__(self, upstream: str, link: RecorderLink, authorization: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, upstream_timeout: float | None = None,
                 log: Callable[[str], None] | None = None, allow_origins: Sequence[str] = (),
                 head_timeout: float = HEAD_TIMEOUT, max_handshakes: int = MAX_HANDSHAKES) -> None:
        self.upstream = Upstream.parse(upstream)
        self.log = log or (lambda _line: None)  # one line per thing the operator should know (the CLI prints it)
        self.upstream_timeout = upstream_timeout
        self.allow_origins = frozenset(o.rstrip("/").lower() for o in allow_origins)
        self.head_timeout = head_timeout
        self.max_handshakes = max_handshakes
        self.handshaking = 0  # connections whose upgrade request is not complete yet
        self.refused: collections.Counter[str] = collections.Counter()  # connections cut, by why
        self.failed = asyncio.Event()  # set when the recorder process is gone: the proxy must exit
        self.link = link
        self.refusals = Refusals(lambda info: link.send_json(0, framing.REFUSED, info))
        self.authorization = authorization
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.sessions: set[Session] = set()
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: asyncio.Server | None = None
        link.on_pause = lambda: self._each_session(Session.pause, "recorder")
        link.on_resume = lambda: self._each_session(Session.resume, "recorder")
        link.on_pause_session = lambda conn: self._one_session(conn, Session.pause, "recorder-session")
        link.on_resume_session = lambda conn: self._one_session(conn, Session.resume, "recorder-session")
        link.on_failed = self._recorder_failed
        self.loop.set_exception_handler(self._loop_exception)

    def _recorder_failed(self) -> None:
        """Nothing may pass unrecorded: close every session, answer new ones 503, let the caller exit non-zero."""
        self._each_session(Session.shutdown)
        self.failed.set()

    def count(self, why: str, status: int | None = None, peer: Any = None, path: str | None = None) -> None:
        """A connection cut before it became a session: counted by reason, logged once per reason, and
        recorded in the archive (`rtreplay.recorder.refusals`: bounded however many come)."""
        if not self.refused[why]:
            log.warning("%s; such connections are counted, not logged one by one", why)
        self.refused[why] += 1
        if not self.link.failed:  # (a dead recorder records nothing: the proxy is exiting)
            self.refusals.note(why, status, f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None, path)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.count(f"accept failed: {exc.strerror} (file descriptors or memory exhausted)")
            return  # asyncio retries the accept itself a moment later
        loop.default_exception_handler(context)

    def origin_refused(self, request: tap.Head) -> bool:
        """True when the request comes from a web page whose Origin is not allowed (`--allow-origin`)."""
        origin = request.get("origin")
        return origin is not None and origin.rstrip("/").lower() not in self.allow_origins

    def _lends_key(self, request: tap.Head) -> bool:
        """The operator's key goes only on WebSocket upgrades (GET) to a Realtime path, from no web page
        or an allowed one: never on plain HTTP requests (`POST /v1/chat/completions`, `DELETE /v1/files`)."""
        method, path, _ = tap.request_target(request)
        upgrade = (request.get("upgrade") or "").lower() == "websocket"
        realtime = path.rstrip("/") in REALTIME_PATHS
        return method == "GET" and upgrade and realtime and not self.origin_refused(request)

    def _each_session(self, method: Any, *args: Any) -> None:
        for session in list(self.sessions):
            method(session, *args)

    def _one_session(self, conn: int, method: Any, *args: Any) -> None:
        for session in self.sessions:  # rare (a session flooding the recorder): no index kept for it
            if session.conn == conn:
                method(session, *args)
                return

    def rewrite(self, request: tap.Head) -> tap.Head:
        authorization = self.authorization if self.authorization and self._lends_key(request) else None
        return tap.rewrite_request(request, self.upstream.host_header, self.upstream.path_prefix, authorization)

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self) -> Side | asyncio.Protocol:
        if self.handshaking >= self.max_handshakes:
            return Refused(self)
        session = Session(self, next(self._conns))
        self.sessions.add(session)
        self._idle.clear()
        return session.client

    def session_ended(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()

    async def listen(self, host: str, port: int) -> int:
        """Start accepting; returns the bound port. A port in use is a one-line `OSError`."""
        try:
            self._server = await self.loop.create_server(self._accept, host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"{host}:{port} is already in use (another proxy?): choose another "
                                         "--listen port") from None
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, timeout: float = 5.0, grace: float = GOODBYE_GRACE) -> None:
        """Stop accepting, say 1001 going away to both sides of every session and give them `grace` seconds
        to answer, close what is left, and wait for the sessions to finish (the recorder records each end)."""
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.going_away()
        for wait, then in ((grace, Session.shutdown), (timeout, Session._end)):
            try:
                await asyncio.wait_for(self._idle.wait(), wait)
                break
            except asyncio.TimeoutError:
                for session in list(self.sessions):
                    then(session)
        for task in list(self._tasks):
            task.cancel()
        self.refusals.flush()
        for why, n in self.refused.items():
            log.warning("%d connections cut before becoming sessions: %s", n, why)


@dataclass
class RunningProxy:
    """A running proxy: its URL and port, the `Proxy`, and `writer` — the link to the recorder process
    (counters `pauses`, `peak_queued_bytes`, `lost_records`, `errors`)."""

    url: str
    port: int
    proxy: Proxy
    writer: RecorderLink


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT with a port from 0 to 65535, not {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@contextlib.asynccontextmanager
async def running(upstream: str, out: Path, *, listen: str = "127.0.0.1:0", audio: str = "keep",
                  flush_interval: float = 0.5, auth_env: str | None = None, authorization: str | None = None,
                  ssl_context: ssl.SSLContext | None = None, high_water: int = 64 << 20,
                  upstream_timeout: float | None = None, log: Callable[[str], None] | None = None,
                  allow_origins: Sequence[str] = (), head_timeout: float = HEAD_TIMEOUT,
                  max_handshakes: int = MAX_HANDSHAKES
                  ) -> AsyncIterator[RunningProxy]:
    """Run a recording proxy until the block exits; every session is then finalized to Parquet.

    A recorder process is started first; it recovers leftover journals under `out` and then records
    (`rtreplay.recorder.child`). `auth_env` names an environment variable whose value is sent as
    `Authorization: Bearer <value>` when a client sends no Authorization header — on WebSocket upgrades to
    a Realtime path only, and only from no web page or one whose Origin is in `allow_origins`.
    `head_timeout` and `max_handshakes` bound connections still sending their upgrade request.
    If the recorder process dies, `RunningProxy.proxy.failed` is set: the caller must stop and exit non-zero. `high_water` bounds, in
    bytes, how far the recording may lag behind the relay at each stage before the relay pauses.
    On exit the proxy closes its sessions and waits until the recorder has written all of them.
    """
    if auth_env is not None:
        key = os.environ.get(auth_env)
        if not key:
            raise ValueError(f"environment variable {auth_env} is not set")
        authorization = f"Bearer {key}"
    host, port = parse_listen(listen)
    Upstream.parse(upstream)  # fail before starting anything
    link = await RecorderLink.start(Path(out), audio=audio, flush_interval=flush_interval, high_water=high_water,
                                    secrets=[authorization] if authorization else [])
    try:
        proxy = Proxy(upstream, link, authorization, ssl_context, upstream_timeout, log, allow_origins, head_timeout,
                      max_handshakes)
        bound = await proxy.listen(host, port)
        try:
            yield RunningProxy(f"ws://{host}:{bound}", bound, proxy, link)
        finally:
            await proxy.stop()
    finally:
        await link.close()
