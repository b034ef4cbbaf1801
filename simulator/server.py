"""The simulator's WebSocket shell: handshake rules, one `Session` per connection, ordered sending.

`serve()` is the embeddable server (an async context manager). Per connection three tasks cooperate:
the reader feeds client messages to the session, the pump advances streaming responses when they are due,
and the writer sends everything the session produced in production order (one outbox, so a cancel's
`response.done` can never overtake a delta produced before it). The pump waits while the outbox is long,
so a slow client slows the stream instead of growing memory.

Handshake: only `/v1/realtime` (else HTTP 404); the query needs `model`, `call_id` or
`intent=transcription` (else HTTP 400). A `call_id` joins no real call: it gets a fresh realtime session.
Beta clients (`OpenAI-Beta: realtime=v1` header or `openai-beta.realtime-v1` subprotocol) get the
`beta_api_shape_disabled` error and close code 4000 (§1.5). Subprotocol `realtime` is selected when
offered. Messages up to 16 MiB; permessage-deflate is accepted when the client offers it; the server
sends no pings (whether the real one does is unknown, §10.9).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtreplay.simulator import validate
from rtreplay.simulator.faults import load_profile
from rtreplay.simulator.response import Close
from rtreplay.simulator.session import Output, Session

_log = logging.getLogger("rtreplay.simulator")
MAX_MESSAGE = 16 * 1024 * 1024
_OUTBOX_HIGH = 64  # queued messages before the pump waits for the writer
_BETA_PROTOCOL = "openai-beta.realtime-v1"


@dataclass(frozen=True)
class Simulator:
    """What `serve()` yields. Clients connect to f"{url}/v1/realtime?model=gpt-realtime"."""
    url: str
    port: int


@contextlib.asynccontextmanager
async def serve(*, host: str = "127.0.0.1", port: int = 0, seed: int = 0, faults: str = "none",
                max_session_s: float = 3600.0, interval: float = 0.0, epoch: int | None = None) -> AsyncIterator[Simulator]:
    """Run a simulator until the block exits.

    `faults`: a shipped profile name or a profile file path (see `rtreplay.simulator.faults`). `interval`: seconds
    between the streaming steps of a response (0 = as fast as the client reads). `epoch`: unix time to
    use as the sessions' start (for `expires_at`), so runs can repeat byte for byte; default: now.
    Sessions are numbered 0, 1, 2, … in the order connections are accepted (the fault session index).
    """
    profile = load_profile(faults)
    counter = itertools.count()

    async def handler(connection: ServerConnection) -> None:
        session_index = next(counter)
        query = connection.request_query  # type: ignore[attr-defined]
        if connection.request_is_beta:  # type: ignore[attr-defined]
            await _reject_beta(connection)
            return
        session = Session(seed=seed, session_index=session_index, profile=profile,
                          kind="transcription" if query.get("intent") == ["transcription"] else "realtime",
                          model_name=query.get("model", ["gpt-realtime"])[0],
                          started_at=int(time.time()) if epoch is None else epoch,
                          max_session_s=max_session_s, interval=interval)
        await _Link(connection, session, max_session_s).run()

    async with ws_serve(handler, host, port, max_size=MAX_MESSAGE, process_request=_check_request,
                        select_subprotocol=_select_subprotocol, ping_interval=None) as server:
        bound = server.sockets[0].getsockname()[1]
        yield Simulator(url=f"ws://{host}:{bound}", port=bound)


def _check_request(connection: ServerConnection, request: Request) -> Response | None:
    url = urlsplit(request.path)
    if url.path.rstrip("/") != "/v1/realtime":
        return _http_error(connection, http.HTTPStatus.NOT_FOUND, f"Invalid URL (GET {url.path})", None)
    query = parse_qs(url.query)
    if not ({"model", "call_id"} & query.keys() or query.get("intent") == ["transcription"]):
        return _http_error(connection, http.HTTPStatus.BAD_REQUEST, "Missing required parameter: 'model'.", "model")
    offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
    connection.request_query = query  # type: ignore[attr-defined]
    connection.request_is_beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "") or \
        _BETA_PROTOCOL in [p.strip() for p in offered.split(",")]  # type: ignore[attr-defined]
    return None


def _http_error(connection: ServerConnection, status: http.HTTPStatus, message: str, param: str | None) -> Response:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": "missing_required_parameter" if param else None}})
    return Response(status.value, status.phrase, Headers({"Content-Type": "application/json",
                                                          "Content-Length": str(len(body))}), body)


def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> str | None:
    return "realtime" if "realtime" in subprotocols else None


async def _reject_beta(connection: ServerConnection) -> None:
    session = Session()  # only for a well-formed error event with a server event id
    error = {"type": "invalid_request_error", "code": "beta_api_shape_disabled", "param": None, "event_id": None,
             "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."}
    await _send(connection, session._event("error", error=error))
    await connection.close(4000, "invalid_request_error.beta_api_shape_disabled")


async def _send(connection: ServerConnection, event: dict[str, Any]) -> None:
    if validate.enabled():
        validate.check_server_event(event)
    await connection.send(orjson.dumps(event), text=True)


class _Link:
    """Connects one WebSocket connection to one Session (reader, pump, writer; see module docstring)."""

    def __init__(self, connection: ServerConnection, session: Session, max_session_s: float) -> None:
        self.connection, self.session, self.max_session_s = connection, session, max_session_s
        self.outbox: collections.deque[Output] = collections.deque()
        self.queued = asyncio.Event()  # outbox got something
        self.drained = asyncio.Event()  # outbox fell below the high-water mark
        self.work = asyncio.Event()  # a client message may have started a response

    def emit(self, outputs: list[Output]) -> None:
        self.outbox.extend(outputs)
        if outputs:
            self.queued.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.emit(self.session.start())
        expiry = loop.call_later(self.max_session_s, lambda: self.emit(self.session.expire()))
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._pump())]
        for task in tasks:
            task.add_done_callback(self._crashed)
        try:
            await self._write()
        finally:
            expiry.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _crashed(self, task: asyncio.Task) -> None:
        """A bug in the session must not leave the client hanging: log it and close with 1011."""
        if not task.cancelled() and task.exception() is not None:
            _log.error("simulator session failed", exc_info=task.exception())
            self.emit([Close(1011, "internal error")])

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            async for message in self.connection:
                outputs = self.session.receive(message, loop.time())
                if validate.enabled() and not any(isinstance(o, dict) and o["type"] == "error" for o in outputs):
                    with contextlib.suppress(orjson.JSONDecodeError):
                        validate.check_client_event(orjson.loads(message))
                self.emit(outputs)
                self.work.set()
        self.emit([Close(1000, "")])  # the client is gone: let the writer finish

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self.session.next_due()
            if due is None:
                await self.work.wait()
                self.work.clear()
                continue
            wait = due - loop.time()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.work.wait(), wait)
                self.work.clear()
                continue
            self.emit(self.session.advance(loop.time()))
            while len(self.outbox) > _OUTBOX_HIGH:
                self.drained.clear()
                await self.drained.wait()
            await asyncio.sleep(0)  # let client messages (cancel, speech) in between steps

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.queued.wait()
                self.queued.clear()
                while self.outbox:
                    output = self.outbox.popleft()
                    if len(self.outbox) <= _OUTBOX_HIGH // 2:
                        self.drained.set()
                    if isinstance(output, Close):
                        await self.connection.close(output.code, output.reason)
                        return
                    await _send(self.connection, output)
