"""A small client for driving the simulator from tests and scripts.

    async with rtreplay.simulator.serve() as sim, connect(sim) as client:
        await client.send("response.create", response={"conversation": "none"})
        events = await client.until("response.done")
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from rtreplay.simulator.server import MAX_MESSAGE, Simulator


class Client:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []  # every server event, in order

    async def send(self, kind: str, **fields: Any) -> None:
        await self.connection.send(orjson.dumps({"type": kind, **fields}), text=True)

    async def next(self) -> dict[str, Any]:
        event = orjson.loads(await self.connection.recv())
        self.received.append(event)
        return event

    async def until(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Events up to and including the first of type `kind` whose fields equal `match`."""
        events = []
        while True:
            event = await self.next()
            events.append(event)
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return events


@contextlib.asynccontextmanager
async def connect(sim: Simulator, query: str = "model=gpt-realtime", **options: Any) -> AsyncIterator[Client]:
    """Connect to `sim` and consume `session.created` (kept in `client.received`)."""
    async with ws_connect(f"{sim.url}/v1/realtime?{query}", max_size=MAX_MESSAGE, **options) as connection:
        client = Client(connection)
        first = await client.next()
        assert first["type"] in ("session.created", "error"), first
        yield client
