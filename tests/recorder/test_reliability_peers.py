"""Peers that misbehave: a client gone mid-frame, an upstream gone silent, an upstream that drops the TCP
connection without a close frame, a client that never reads. The proxy survives each (the next session
works), the archive says what happened, and memory stays bounded."""
from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import Frame, Opcode

from rtreplay.recorder import schema
from rtreplay.recorder.proxy import running
from reliability_support import (SECRET_EVENT, assert_no_secret, credentials, echo, no_secret_in_logs,  # noqa: F401
                                 rss, run_cli, select_realtime,
                                 until, until_stable)
from test_proxy_relay import session_rows

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

MB = 1 << 20


def event(i: int, who: str = "c") -> str:
    return orjson.dumps({"type": "conversation.item.create", "event_id": f"{who}{i}"}).decode()


async def still_serves(url: str) -> None:
    """A fresh session through the same proxy gets its echo: the proxy survived."""
    async with connect(url + "/v1/realtime?model=m", **credentials()) as ws:
        assert await ws.recv() == SECRET_EVENT
        await ws.send(event(0, "after"))
        assert await ws.recv() == event(0, "after")


def by_who(out) -> dict[str, list[dict]]:
    """Sessions keyed by their first client event id (or 'none')."""
    found = {}
    for rows in session_rows(out).values():
        first = next((r["event_id"] for r in rows if r["direction"] == schema.CLIENT), "none")
        found[first] = rows
    return found


@pytest.mark.parametrize("how", ["fin", "reset"])
async def test_client_gone_mid_frame(tmp_path, how) -> None:
    upstream_saw: list[int | None] = []

    async def handler(ws) -> None:
        await echo(ws)
        upstream_saw.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0, select_subprotocol=select_realtime) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            ws = await connect(proxy.url + "/v1/realtime?model=m", **credentials())
            await ws.recv()
            for i in range(5):
                await ws.send(event(i))
                await ws.recv()
            half = Frame(Opcode.TEXT, event(5).encode() * 40).serialize(mask=True, extensions=[])
            ws.transport.write(half[: len(half) // 2])
            ws.transport.abort() if how == "reset" else ws.transport.close()
            await until(lambda: upstream_saw)
            await still_serves(proxy.url)

    assert upstream_saw[0] == 1006  # the upstream saw the connection drop, as it happened
    rows = by_who(tmp_path)["c0"]
    assert [r["event_id"] for r in rows if r["direction"] == schema.CLIENT] == [f"c{i}" for i in range(5)]
    closed = orjson.loads(rows[-1]["payload"])
    assert rows[-1]["type"] == schema.PROXY_CLOSE
    assert closed["first_disconnect"] == "client" and closed["client"] is None
    assert_no_secret(tmp_path)


async def test_silent_upstream_gets_the_client_a_close_after_the_timeout(tmp_path) -> None:
    """The upstream accepts the session, then answers nothing (no frames, no pongs: it stops reading).
    With `upstream_timeout`, the client gets a close frame and the archive says why."""
    release = asyncio.Event()

    async def hang(ws) -> None:
        ws.transport.pause_reading()
        await release.wait()
        ws.transport.abort()  # it never read the proxy's goodbye; do not wait for a closing handshake

    async with serve(hang, "127.0.0.1", 0, select_subprotocol=select_realtime) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path,
                           upstream_timeout=1.0) as proxy:
            async with connect(proxy.url + "/v1/realtime?model=m", ping_interval=None, **credentials()) as ws:
                await ws.send(orjson.dumps({"type": "response.create", "event_id": "c0"}).decode())
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 20)
            release.set()

    assert ws.close_code is not None and ws.close_code != 1006, "the client got no close frame"
    [rows] = session_rows(tmp_path).values()
    assert [r["event_id"] for r in rows if r["direction"] == schema.CLIENT] == ["c0"]
    said = " ".join(r["payload"] for r in rows if r["direction"] == schema.PROXY and r["type"] != schema.PROXY_OPEN)
    assert "timeout" in said.lower() or "timed out" in said.lower(), said
    assert_no_secret(tmp_path)


def test_upstream_timeout_is_a_cli_option() -> None:
    shown = run_cli("proxy", "--help")
    assert "--upstream-timeout" in shown.stdout


@pytest.mark.parametrize("how", ["fin", "reset"])
async def test_upstream_drops_the_connection_without_a_close_frame(tmp_path, how) -> None:
    async def drop(ws) -> None:
        await ws.send(SECRET_EVENT)
        for i in range(3):
            await ws.send(event(i, "s"))
        await asyncio.sleep(0.2)
        ws.transport.abort() if how == "reset" else ws.transport.close()

    got: list[str] = []
    async with serve(drop, "127.0.0.1", 0, select_subprotocol=select_realtime) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            async with connect(proxy.url + "/v1/realtime?model=m", **credentials()) as ws:
                with pytest.raises(ConnectionClosedError):
                    while True:
                        got.append(await asyncio.wait_for(ws.recv(), 10))

    assert got == [SECRET_EVENT] + [event(i, "s") for i in range(3)]
    assert ws.close_code == 1006  # no close frame reached the client: none was sent
    [rows] = session_rows(tmp_path).values()
    assert [r["event_id"] for r in rows if r["direction"] == schema.SERVER][1:] == ["s0", "s1", "s2"]
    closed = orjson.loads(rows[-1]["payload"])
    assert closed["first_disconnect"] == "server" and closed["server"] is None and closed["first_close"] is None
    assert_no_secret(tmp_path)


async def test_client_that_never_reads_holds_the_upstream_back_with_memory_bounded(tmp_path) -> None:
    """The upstream tries to push 100 MB at a client that reads nothing: the proxy's write buffer to the
    client fills, the proxy stops reading the upstream, the upstream gets stuck, memory stays bounded.
    When the client reads at last, every frame arrives, in order, and is recorded."""
    n, size = 200, 512 * 1024
    pushed = 0

    def frame(i: int) -> str:
        return '{"type":"response.output_audio.delta","event_id":"s%d","delta":"%s"}' % (i, f"{i:08d}" * (size // 8))

    async def push(ws) -> None:
        nonlocal pushed
        await ws.send(SECRET_EVENT)
        for i in range(n):
            await ws.send(frame(i))
            pushed += 1
        await ws.wait_closed()

    async with serve(push, "127.0.0.1", 0, max_size=None, compression=None, select_subprotocol=select_realtime) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path, audio="drop") as proxy:
            async with connect(proxy.url + "/v1/realtime?model=m", max_size=None, compression=None,
                               max_queue=4, **credentials()) as ws:
                base, peak = rss(), 0

                def progress() -> int:
                    nonlocal peak
                    peak = max(peak, rss())
                    return pushed

                stuck_at = await until_stable(progress, settle=1.0)
                got = [hashlib.sha256((await ws.recv()).encode()).digest() for _ in range(n + 1)]

    assert stuck_at < n / 2, f"the upstream pushed {stuck_at} of {n} frames to a client that read nothing"
    assert peak - base < 40 * MB, f"memory grew by {(peak - base) // MB} MB"
    assert got[1:] == [hashlib.sha256(frame(i).encode()).digest() for i in range(n)]
    [rows] = session_rows(tmp_path).values()
    assert [r["event_id"] for r in rows if r["direction"] == schema.SERVER][1:] == [f"s{i}" for i in range(n)]
    assert_no_secret(tmp_path)
