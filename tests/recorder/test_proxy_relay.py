"""The proxy over real sockets on 127.0.0.1: what the peers see, and what the archive holds."""
from __future__ import annotations

import asyncio
import base64
import functools
import random
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode

from rtreplay.recorder import archive, schema
from rtreplay.recorder.proxy import running

from reliability_support import free_port  # noqa: F401  (test_adversarial_tap imports it from here)

Message = str | bytes


def in_loop(test):
    """Run an async test in a fresh event loop (the suite has no asyncio pytest plugin)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))
    return run


def random_frames(rng: random.Random, n: int, who: str) -> list[Message]:
    """Small JSON, 32 KB audio appends, rare 1.5 MB audio, invalid JSON text and binary, mixed."""
    frames: list[Message] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.45:
            frames.append(orjson.dumps({"type": "conversation.item.create", "event_id": f"{who}_{i}",
                                        "item": {"type": "message", "content": [{"type": "input_text",
                                                                                 "text": "hé " * rng.randrange(1, 40)}]}}).decode())
        elif roll < 0.8:
            pcm = rng.randbytes(24 * 1024)  # 32 KB of base64
            frames.append('{"type":"input_audio_buffer.append","event_id":"%s_%d","audio":"%s"}'
                          % (who, i, base64.b64encode(pcm).decode()))
        elif roll < 0.81:
            pcm = rng.randbytes(1_125_000)  # 1.5 MB of base64
            frames.append('{"type":"response.output_audio.delta","response_id":"resp_1","delta":"%s"}'
                          % base64.b64encode(pcm).decode())
        elif roll < 0.9:
            frames.append("{not json %d" % i)
        else:
            frames.append(rng.randbytes(rng.randrange(0, 2000)))
    return frames


def rebuild(row: dict) -> Message:
    """A recorded message as the peers exchanged it."""
    if row["type"] == schema.BINARY or (row["type"] == schema.INVALID_JSON and row["audio"] is not None):
        return row["audio"]
    return schema.rebuild_frame(row["payload"], row["audio"], row["audio_at"])


def fragments(message: Message, pieces: int = 3) -> list[Message]:
    step = max(1, len(message) // pieces)
    return [message[i:i + step] for i in range(0, len(message), step)] or [message]


async def exchange(ws, outgoing: list[Message], fragmented: bool) -> list[Message]:
    """Send `outgoing` while receiving as many messages; returns what was received."""
    received: list[Message] = []

    async def sender() -> None:
        for i, message in enumerate(outgoing):
            await ws.send(fragments(message) if fragmented and i % 2 and len(message) > 3 else message)

    async def receiver() -> None:
        while len(received) < len(outgoing):
            received.append(await ws.recv())

    await asyncio.gather(sender(), receiver())
    return received


def session_rows(out: Path) -> dict[str, list[dict]]:
    got = archive.read_archive(out)
    assert got.problems == []
    assert not list((out / "journal").glob("*")), "every session was finalized"
    sessions: dict[str, list[dict]] = {}
    for row in got.table.to_pylist():
        sessions.setdefault(row["session_id"], []).append(row)
    return sessions


@pytest.mark.parametrize("compression,fragmented", [(None, False), ("deflate", False), ("deflate", True), (None, True)])
@in_loop
async def test_random_frames_pass_unchanged_and_rebuild_from_the_archive(tmp_path, compression, fragmented) -> None:
    rng = random.Random(f"{compression}{fragmented}")
    to_server, to_client = random_frames(rng, 1000, "c"), random_frames(rng, 1000, "s")
    upstream_got: list[Message] = []

    async def handler(ws) -> None:
        upstream_got.extend(await exchange(ws, to_client, fragmented))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=compression) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            async with connect(proxy.url + "/v1/realtime?model=m", max_size=None, compression=compression) as ws:
                client_got = await exchange(ws, to_server, fragmented)
                extensions = ws.response.headers.get("Sec-WebSocket-Extensions")

    assert (extensions is not None) == (compression == "deflate")
    assert client_got == to_client and upstream_got == to_server
    [rows] = session_rows(tmp_path).values()
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert [rebuild(r) for r in rows if r["direction"] == schema.CLIENT] == to_server
    assert [rebuild(r) for r in rows if r["direction"] == schema.SERVER] == to_client
    assert sum(r["audio"] is not None and r["type"] != schema.BINARY for r in rows) > 500
    assert [r["type"] for r in rows if r["direction"] == schema.PROXY] == [schema.PROXY_OPEN, schema.PROXY_CLOSE]


@pytest.mark.parametrize("code", [CloseCode.NORMAL_CLOSURE, CloseCode.INTERNAL_ERROR, 4000])
@pytest.mark.parametrize("closer", ["client", "server"])
@in_loop
async def test_close_codes_and_reasons_pass_through(tmp_path, code, closer) -> None:
    reason = f"bye {int(code)}"
    upstream_saw: list[tuple[int | None, str | None]] = []

    async def handler(ws) -> None:
        if closer == "server":
            await ws.send('{"type":"session.created"}')
            await ws.close(code, reason)
        else:
            await ws.wait_closed()
        upstream_saw.append((ws.close_code, ws.close_reason))

    async with serve(handler, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            async with connect(proxy.url) as ws:
                if closer == "client":
                    await ws.close(code, reason)
                else:
                    with pytest.raises(ConnectionClosed):
                        while True:
                            await ws.recv()
            await asyncio.sleep(0.1)

    assert (ws.close_code, ws.close_reason) == (code, reason)
    assert upstream_saw == [(code, reason)]
    [rows] = session_rows(tmp_path).values()
    closed = orjson.loads(rows[-1]["payload"])
    assert rows[-1]["type"] == schema.PROXY_CLOSE
    assert closed["first_close"] == closer
    assert closed["client"] == closed["server"] == {"code": int(code), "reason": reason}


@in_loop
async def test_upstream_rejection_reaches_the_client_with_its_body(tmp_path) -> None:
    body = '{"error":{"type":"invalid_request_error","code":"invalid_api_key"}}'

    def reject(connection, request):
        return connection.respond(401, body)

    async with serve(lambda ws: None, "127.0.0.1", 0, process_request=reject) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(proxy.url + "/v1/realtime?model=m"):
                    pass

    assert caught.value.response.status_code == 401
    assert caught.value.response.body.decode() == body
    [rows] = session_rows(tmp_path).values()
    assert [r["type"] for r in rows] == [schema.PROXY_OPEN, schema.PROXY_UPSTREAM_REJECTED, schema.PROXY_CLOSE]
    rejected = orjson.loads(rows[1]["payload"])
    assert (rejected["status"], rejected["body"]) == (401, body)


@in_loop
async def test_unreachable_upstream_gets_502_and_an_error_record(tmp_path) -> None:
    async with running(f"ws://127.0.0.1:{free_port()}", tmp_path) as proxy:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(proxy.url):
                pass
    assert caught.value.response.status_code == 502
    [rows] = session_rows(tmp_path).values()
    assert [r["type"] for r in rows] == [schema.PROXY_OPEN, schema.PROXY_ERROR, schema.PROXY_CLOSE]
    assert "unreachable" in orjson.loads(rows[1]["payload"])["error"]


@in_loop
async def test_fake_keys_reach_no_file(tmp_path) -> None:
    header_key = "sk-test-fake-HEADERKEY0123456789"
    browser_key = "ek_test_fake_BROWSERKEY0123456"
    minted_key = "ek_test_fake_MINTEDKEY01234567"

    async def handler(ws) -> None:
        await ws.send(orjson.dumps({"type": "session.created", "note": f"echo {header_key}",
                                    "client_secret": {"value": minted_key, "expires_at": 0}}).decode())
        await ws.send(orjson.dumps({"type": "x.minted", "key": minted_key}).decode())
        await ws.wait_closed()

    def reject_some(connection, request):
        if request.path.startswith("/reject"):
            return connection.respond(401, f"Incorrect API key provided: {header_key}")
        return None

    async with serve(handler, "127.0.0.1", 0, process_request=reject_some,
                     select_subprotocol=lambda conn, offered: "realtime" if "realtime" in offered else None) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            async with connect(proxy.url + "/v1/realtime", additional_headers={"Authorization": f"Bearer {header_key}"}) as ws:
                assert minted_key in await ws.recv()
                await ws.recv()
            async with connect(proxy.url + "/v1/realtime",
                               subprotocols=["realtime", f"openai-insecure-api-key.{browser_key}"]) as ws:
                assert ws.subprotocol == "realtime"
                await ws.recv()
            with pytest.raises(InvalidStatus):
                async with connect(proxy.url + "/reject", additional_headers={"Authorization": f"Bearer {header_key}"}):
                    pass

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(session_rows(tmp_path)) == 3
    table = archive.read_archive(tmp_path).table
    for key in (header_key, browser_key, minted_key):
        assert not any(key.encode() in p.read_bytes() for p in files)
        assert not [v for v in table["payload"].to_pylist() if key in v]


@in_loop
async def test_fifty_concurrent_sessions_each_get_their_own_complete_stream(tmp_path) -> None:
    async def handler(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async def one_session(url: str, n: int) -> None:
        async with connect(f"{url}/v1/realtime?model=m&who={n}") as ws:
            for i in range(20):
                await ws.send(orjson.dumps({"type": "conversation.item.create", "event_id": f"{n}:{i}"}).decode())
                await ws.recv()

    async with serve(handler, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            await asyncio.gather(*(one_session(proxy.url, n) for n in range(50)))

    sessions = session_rows(tmp_path)
    assert len(sessions) == 50
    seen = set()
    for rows in sessions.values():
        # `who` is not an allowlisted query parameter: the record keeps its name, not its value.
        assert orjson.loads(rows[0]["payload"])["query"] == "model=m&who=[redacted]"
        events = [r for r in rows if r["direction"] != schema.PROXY]
        who = events[0]["event_id"].split(":")[0]
        seen.add(who)
        assert [r["event_id"] for r in events] == [f"{who}:{i // 2}" for i in range(40)]
        assert [r["direction"] for r in events] == [schema.CLIENT, schema.SERVER] * 20
    assert seen == {str(n) for n in range(50)}


@in_loop
async def test_auth_from_env_is_added_only_when_the_client_sends_none(tmp_path, monkeypatch) -> None:
    env_key, own_key = "sk-test-fake-FROMENV0123456789", "sk-test-fake-OWNKEY0123456789"
    monkeypatch.setenv("RTREPLAY_TEST_FAKE_KEY", env_key)
    seen: list[str | None] = []

    async def handler(ws) -> None:
        seen.append(ws.request.headers.get("Authorization"))
        await ws.send('{"type":"session.created"}')
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path,
                           auth_env="RTREPLAY_TEST_FAKE_KEY") as proxy:
            for headers in ({}, {"Authorization": f"Bearer {own_key}"}):
                async with connect(proxy.url + "/v1/realtime", additional_headers=headers) as ws:  # a Realtime path
                    await ws.recv()

    assert seen == [f"Bearer {env_key}", f"Bearer {own_key}"]
    assert len(session_rows(tmp_path)) == 2
    for p in tmp_path.rglob("*"):
        assert not p.is_file() or env_key.encode() not in p.read_bytes()
