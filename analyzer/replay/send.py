"""Sending a planned replay: one WebSocket session, every frame copied to a recorder, one answer back.

Thin on purpose: what to send is decided by `rtreplay.analyzer.replay.plan`; this module only connects, sends the
planned lines in order (without waiting between them: the server answers client events in order), and reads
until the final `response.create` is concluded — by its `response.done`, by an `error` that rejects it, by
the connection ending, or by the deadline. Errors answering earlier (setup) events are collected: they mean
the context was not recreated as planned.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rtreplay.analyzer.state.match import is_ordered_rejection

MAX_MESSAGE = 1 << 24  # server messages can exceed websockets' 1 MiB default (realtime-protocol.md §9.5)


class Recorder(Protocol):
    """Where the frames of a replay session go (a `rtreplay.recorder.writer.SessionHandle`, or a test double)."""

    def client(self, text: str) -> None: ...

    def server(self, text: str) -> None: ...


@dataclass
class Answer:
    """What the target did with the replayed request. `outcome` uses docs/definitions.md's names."""

    outcome: str  # completed | failed | cancelled | incomplete | rejected | unfinished
    response_id: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    reason: str | None = None
    output: list[Any] = field(default_factory=list)  # response.done → response.output
    setup_errors: list[dict[str, Any]] = field(default_factory=list)  # `error` objects for setup events
    detail: str | None = None  # why it is unfinished (timeout, connection closed, handshake refused)


class Connection:
    """A client WebSocket to a Realtime target whose every text frame is also given to `recorder`."""

    def __init__(self, ws: ClientConnection, recorder: Recorder | None) -> None:
        self.ws = ws
        self.recorder = recorder

    async def send(self, text: str) -> None:
        await self.ws.send(text)
        if self.recorder is not None:
            self.recorder.client(text)

    async def recv(self) -> dict[str, Any]:
        """The next server event as a dict (`{}` for a frame that is not a JSON object)."""
        message = await self.ws.recv()
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        if self.recorder is not None:
            self.recorder.server(text)
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {}
        return event if isinstance(event, dict) else {}

    def close_info(self) -> dict[str, Any]:
        """Close codes and reasons, shaped like the proxy's `proxy.close` record."""
        def side(close: Any) -> dict[str, Any] | None:
            return None if close is None else {"code": close.code, "reason": close.reason}
        return {"client": side(self.ws.protocol.close_sent), "server": side(self.ws.protocol.close_rcvd),
                "first_close": {True: "server", False: "client"}.get(self.ws.protocol.close_rcvd_then_sent)}


@contextlib.asynccontextmanager
async def connected(url: str, model: str, headers: Sequence[tuple[str, str]] = (),
                    recorder: Recorder | None = None) -> AsyncIterator[Connection]:
    """A connection to `{url}/v1/realtime?model=…` after its `session.created` (closed on exit)."""
    async with connect(f"{url.rstrip('/')}/v1/realtime?model={model}", additional_headers=list(headers),
                       max_size=MAX_MESSAGE, open_timeout=10) as ws:
        conn = Connection(ws, recorder)
        while (await conn.recv()).get("type") not in ("session.created", "error"):
            pass
        yield conn


async def send_plan(conn: Connection, lines: Sequence[str], request_event_id: str) -> Answer:
    """Send `lines` (the last is the `response.create`) and read until that request is concluded."""
    setup_ids = {orjson.loads(line).get("event_id") for line in lines[:-1]}
    for line in lines:
        await conn.send(line)
    setup_errors: list[dict[str, Any]] = []
    response_id: str | None = None
    while True:
        event = await conn.recv()
        kind = event.get("type")
        if kind == "error":
            error = _obj(event.get("error"))
            event_id = error.get("event_id") if isinstance(error.get("event_id"), str) else None
            if event_id in setup_ids:
                setup_errors.append(error)
            elif event_id == request_event_id or is_ordered_rejection(error):
                return Answer("rejected", error_type=error.get("type"), error_code=error.get("code"),
                              setup_errors=setup_errors, detail=error.get("message"))
        elif kind == "response.created" and response_id is None:
            response_id = _obj(event.get("response")).get("id")
        elif kind == "response.done" and response_id is not None and _obj(event.get("response")).get("id") == response_id:
            return _concluded(event["response"], setup_errors)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}  # a target may send anything where an object belongs


def _concluded(response: dict[str, Any], setup_errors: list[dict[str, Any]]) -> Answer:
    status = response.get("status")
    details = response.get("status_details") if isinstance(response.get("status_details"), dict) else {}
    error = details.get("error") if isinstance(details.get("error"), dict) else {}
    output = response.get("output") if isinstance(response.get("output"), list) else []
    answer = Answer("failed", response_id=response.get("id"), output=output, setup_errors=setup_errors)
    if status in ("completed", "cancelled", "incomplete"):
        answer.outcome = status
        answer.reason = details.get("reason")
    elif status == "failed":
        answer.error_type, answer.error_code = error.get("type"), error.get("code")
    else:
        answer.error_type = str(status)  # any other status counts as failed (docs/definitions.md)
    return answer


async def replay_once(url: str, model: str, lines: Sequence[str], request_event_id: str, *, timeout: float,
                      headers: Sequence[tuple[str, str]] = (), recorder: Recorder | None = None
                      ) -> tuple[Answer, dict[str, Any]]:
    """Run one planned replay session: (the answer, close info for the recording)."""
    close: dict[str, Any] = {"client": None, "server": None, "first_close": None}
    try:
        async with asyncio.timeout(timeout):
            async with connected(url, model, headers, recorder) as conn:
                try:
                    answer = await send_plan(conn, lines, request_event_id)
                finally:
                    await conn.ws.close()
                    close = conn.close_info()
    except TimeoutError:
        answer = Answer("unfinished", detail=f"no answer within {timeout:g} s")
    except InvalidStatus as exc:
        answer = Answer("unfinished", detail=f"handshake refused: HTTP {exc.response.status_code}")
    except (ConnectionClosed, InvalidHandshake, OSError) as exc:
        answer = Answer("unfinished", detail=f"connection ended: {exc or type(exc).__name__}")
    return answer, close
