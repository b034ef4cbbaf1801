"""Bad frames: 10,000 generated frames pass through exactly as the peers' WebSocket stacks allow, are
recorded as such, and neither the proxy nor any analyzer command crashes on the archive they make.

Kinds: invalid JSON, JSON that is not an object, a missing or non-string `type`, unknown types, lone
surrogate escapes, deeply nested JSON (below and above the parser's depth limit), binary frames, empty
frames, fragmented messages, 16 MiB frames (text and binary), invalid UTF-8 in text frames (each way: the
receiving stack closes with 1007, and that close passes too), and control frames (pings, unsolicited
pongs) interleaved with the fragments of a message, sent by a sans-I/O websockets client.
"""
from __future__ import annotations

import asyncio
import base64
import os
import random

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.uri import parse_uri

from rtreplay.recorder import schema
from rtreplay.recorder.proxy import running
from reliability_support import (FAKE_KEY, SECRET_EVENT, assert_no_secret, credentials, no_secret_in_logs,  # noqa: F401
                                 run_cli, select_realtime)
from test_proxy_relay import rebuild, session_rows

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

N = 10_000
INVALID, BINARY = schema.INVALID_JSON, schema.BINARY


def generated(rng: random.Random, n: int) -> list[tuple[str | bytes, str]]:
    """(frame, the `type` it must be recorded with), one kind after another in random order."""
    def unknown(i):
        return orjson.dumps({"type": f"x.unknown.{i}", "event_id": f"u{i}"}).decode(), f"x.unknown.{i}"

    def nested(depth):  # orjson, the recorder's parser, refuses nesting deeper than 1024
        text = '{"type":"conversation.item.create","item":' + "[" * depth + "]" * depth + "}"
        return text, ("conversation.item.create" if depth < 1000 else INVALID)

    kinds = [
        lambda i: (orjson.dumps({"type": "conversation.item.create", "event_id": f"v{i}",
                                 "item": {"type": "message", "content": [{"type": "input_text", "text": "héllo 👋"}]}}).decode(),
                   "conversation.item.create"),
        lambda i: (rng.choice(['{"type": "x"', "not json", "{'type': 'x'}", '{"type":"a",}', "", " ", "\x00"]), INVALID),
        lambda i: (rng.choice(["[1,2,3]", '"response.create"', "42", "null", "true", "[]"]), INVALID),
        lambda i: (orjson.dumps({"event_id": f"m{i}"}).decode(), INVALID),
        lambda i: (rng.choice(['{"type":5}', '{"type":null}', '{"type":{"a":1}}', '{"type":["x"]}']), INVALID),
        unknown,
        lambda i: ('{"type":"conversation.item.create","text":"\\ud800 alone"}', INVALID),
        lambda i: nested(rng.choice([10, 200, 2000, 50_000])),
        lambda i: (rng.randbytes(rng.randrange(0, 4096)), BINARY),
        lambda i: ('{"type":"input_audio_buffer.append","audio":"%s"}' % base64.b64encode(rng.randbytes(960)).decode(),
                   "input_audio_buffer.append"),
    ]
    return [kinds[rng.randrange(len(kinds))](i) for i in range(n)]


def huge() -> list[tuple[str | bytes, str]]:
    """Two 16 MiB frames: an audio append (text) and binary."""
    head = '{"type":"input_audio_buffer.append","event_id":"huge","audio":"'
    raw = (16 * 2**20 - len(head) - 2) // 4 * 3
    return [(head + base64.b64encode(os.urandom(raw)).decode() + '"}', "input_audio_buffer.append"),
            (os.urandom(16 * 2**20), BINARY)]


def fragments(frame: str | bytes, rng: random.Random) -> list:
    if len(frame) < 4 or rng.random() < 0.9:
        return [frame]
    cut = sorted(rng.sample(range(1, len(frame)), 2))
    return [frame[: cut[0]], frame[cut[0]: cut[1]], frame[cut[1]:]]


async def echo_or_break(ws) -> None:
    """Echo each message as it came (text or binary); `?model=bad-server` sends invalid UTF-8 instead."""
    await ws.send(SECRET_EVENT)
    try:
        if "model=bad-server" in ws.request.path:
            await ws.send(b"ok")
            await ws.send(b"caf\xe9 \xff", text=True)
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main_session(url: str, frames: list[tuple[str | bytes, str]]) -> list:
    rng = random.Random(7)
    got: list = []
    async with connect(url + "/v1/realtime?model=main", max_size=None, **credentials()) as ws:
        assert await ws.recv() == SECRET_EVENT

        async def sender() -> None:
            for frame, _ in frames:
                parts = fragments(frame, rng)
                await ws.send(parts if len(parts) > 1 else frame)

        async def receiver() -> None:
            while len(got) < len(frames):
                got.append(await ws.recv())

        await asyncio.gather(sender(), receiver())
    return got


async def invalid_utf8_session(url: str, bad: str) -> tuple[int | None, list]:
    """A session where `bad` ("client" or "server") sends a text frame that is not UTF-8."""
    got: list = []
    async with connect(f"{url}/v1/realtime?model=bad-{bad}", **credentials()) as ws:
        try:
            if bad == "client":
                await ws.send('{"type":"x.before"}')
                await ws.send(b'{"type":"x","t":"caf\xe9"}', text=True)
            while True:
                got.append(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed:
            pass
    return ws.close_code, got


async def interleaved_control_session(port: int, messages: list[str]) -> tuple[list[str], list[bytes]]:
    """Fragments with pings and unsolicited pongs between them, written by websockets' sans-I/O client."""
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/v1/realtime?model=control"), max_size=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = protocol.connect()
    request.headers["Authorization"] = f"Bearer {FAKE_KEY}"
    protocol.send_request(request)
    texts, pongs = [], []

    async def pump_until(done) -> None:
        writer.write(b"".join(protocol.data_to_send()))
        while not done():
            data = await asyncio.wait_for(reader.read(65536), 10)
            protocol.receive_data(data) if data else protocol.receive_eof()
            for ev in protocol.events_received():
                if getattr(ev, "opcode", None) is Opcode.TEXT:
                    texts.append(ev.data.decode())
                elif getattr(ev, "opcode", None) is Opcode.PONG:
                    pongs.append(bytes(ev.data))
            writer.write(b"".join(protocol.data_to_send()))
            if not data:
                return

    await pump_until(lambda: protocol.handshake_exc is not None or protocol.state.name == "OPEN")
    for i, message in enumerate(messages):
        a, b = len(message) // 3, 2 * len(message) // 3
        protocol.send_text(message[:a].encode(), fin=False)
        protocol.send_ping(f"ping{i}".encode())
        protocol.send_continuation(message[a:b].encode(), fin=False)
        protocol.send_pong(b"unsolicited")
        protocol.send_continuation(message[b:].encode(), fin=True)
    await pump_until(lambda: len(texts) >= len(messages) + 1 and len(pongs) >= len(messages))
    protocol.send_close(1000, "done")
    await pump_until(lambda: protocol.state.name == "CLOSED")
    writer.close()
    return texts, pongs


async def test_ten_thousand_bad_frames_pass_as_the_stacks_allow_and_are_recorded_as_such(tmp_path) -> None:
    frames = generated(random.Random(2026), N) + huge()
    control_messages = [orjson.dumps({"type": "conversation.item.create", "event_id": f"f{i}",
                                      "item": {"text": "fragmented " * 20}}).decode() for i in range(50)]

    async with serve(echo_or_break, "127.0.0.1", 0, max_size=None, select_subprotocol=select_realtime) as up:
        direct = f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}"
        utf8_direct = [await invalid_utf8_session(direct, bad) for bad in ["client", "server"]]
        async with running(direct, tmp_path) as proxy:
            echoed = await main_session(proxy.url, frames)
            utf8 = [await invalid_utf8_session(proxy.url, bad) for bad in ["client", "server"] * 5]
            texts, pongs = await interleaved_control_session(proxy.port, control_messages)

    # The peers got exactly what was sent.
    assert echoed == [f for f, _ in frames]
    # Invalid UTF-8: the receiving stack fails the connection (1007); the client ends as it would directly.
    assert utf8 == utf8_direct * 5
    assert utf8_direct[0][0] == 1007
    assert texts == [SECRET_EVENT] + control_messages
    assert pongs == [f"ping{i}".encode() for i in range(50)]

    # The archive holds every frame, as sent, with the type it must have.
    sessions = session_rows(tmp_path)
    # Sessions are told apart by `model`: the query's only parameter recorded as sent (docs/security.md).
    by_run = {orjson.loads(rows[0]["payload"])["query"]: rows for rows in sessions.values()}
    main = by_run["model=main"]
    for direction in (schema.CLIENT, schema.SERVER):
        rows = [r for r in main if r["direction"] == direction][0 if direction == schema.CLIENT else 1:]
        assert [rebuild(r) for r in rows] == [f for f, _ in frames]
        assert [r["type"] for r in rows] == [t for _, t in frames]
    control = by_run["model=control"]
    assert [r["payload"] for r in control if r["direction"] == schema.CLIENT] == control_messages
    assert {r["type"] for r in control} <= {schema.PROXY_OPEN, schema.PROXY_CLOSE, "session.created",
                                             "conversation.item.create"}  # no ping or pong became an event
    for bad in ("client", "server"):
        for rows in [rows for q, rows in by_run.items() if q == f"model=bad-{bad}"]:
            invalid = [r for r in rows if r["type"] == INVALID and r["audio"] is not None]
            assert [r["direction"] for r in invalid] == [bad]
            assert invalid[0]["audio"] in (b'{"type":"x","t":"caf\xe9"}', b"caf\xe9 \xff")
            closed = orjson.loads(rows[-1]["payload"])
            assert 1007 in (closed["client"] or {}).values() or 1007 in (closed["server"] or {}).values()
    assert len(sessions) == 12
    assert_no_secret(tmp_path)

    # No analyzer command crashes on this archive.
    picked = [(rows[0]["session_id"], str(rows[-1]["seq"])) for rows in (main, control, by_run["model=bad-server"])]
    outputs = []
    for args, ok in [(["analyze", str(tmp_path), "--format", "json"], {0}),
                     (["sessions", str(tmp_path), "--format", "json"], {0}),
                     *[(["state", str(tmp_path), sid, "--at", seq, "--format", "json"], {0}) for sid, seq in picked],
                     *[(["show", str(tmp_path), sid], {0}) for sid, _ in picked],
                     (["sql", str(tmp_path), "SELECT type, count(*) FROM events GROUP BY 1"], {0}),
                     (["query", str(tmp_path), "failure_rate"], {0}),
                     (["replay", str(tmp_path), "--dry-run", "--scope", "all", "--target", "sim"], {0, 2})]:
        done = run_cli(*args)
        assert done.returncode in ok and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        outputs.append(done.stdout + done.stderr)
    assert_no_secret(*outputs)
