"""The attacker's tests of the recorder's tap (issue 15): a deflate bomb, frames that break the protocol,
a stream cut inside a frame, a failing writer thread. Loopback only, bounded in time and size.

The proxy runs as `rtreplay proxy` in its own process (so its exit status and SIGTERM are real); peers are
websockets where they play by the rules and raw sockets where they do not.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode
from websockets.speedups import apply_mask

from rtreplay.recorder import schema, tap
from reliability_support import echo, recorder_processes, start_proxy, stop_proxy, until
from test_proxy_relay import free_port, in_loop, session_rows

BOMB = int(os.environ.get("RTREPLAY_TEST_BOMB_BYTES", 1 << 30))  # inflated size of the bomb (1 GiB)
# The recorder process may grow by at most this much while a bomb goes through (docs/reliability.md): the
# message cap (16 MiB) and what is made of the message that is recorded, not the bomb's inflated size.
BOMB_GROWTH_BOUND = 96 << 20


def vm_hwm(pid: int) -> int:
    """Peak resident memory of process `pid` so far, in bytes (/proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def stop_watching_peak(proc: subprocess.Popen, child: int) -> tuple[int, str, int]:
    """SIGTERM the proxy; (exit status, output, the recorder's peak resident memory until it exited)."""
    proc.send_signal(signal.SIGTERM)
    peak = 0
    while True:
        try:
            peak = max(peak, vm_hwm(child))
        except (OSError, AssertionError):  # gone (or a zombie without memory)
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)  # the SIGTERM above stops it: a second one could kill it mid-exit
    return proc.returncode, (out + err).decode("utf-8", "replace"), peak


def bomb_frame(size: int) -> bytes:
    """A masked, compressed text frame (RSV1) whose message inflates to `size` bytes of "a"."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"a" * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)  # starts afresh: repeatable
    data = block * (size >> 20)
    assert data.endswith(b"\x00\x00\xff\xff")
    payload, mask = data[:-4], os.urandom(4)
    return bytes([0xC1, 0x80 | 127]) + len(payload).to_bytes(8, "big") + mask + apply_mask(payload, mask)


async def raw_client(port: int, query: str, extensions: str | None = None) -> tuple[asyncio.StreamReader,
                                                                                       asyncio.StreamWriter, bytes]:
    """A client that speaks WebSocket by hand: the upgrade, then whatever the test writes. Returns the
    upstream's answer head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"GET /v1/realtime?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    if extensions:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    writer.write((head + "\r\n").encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return reader, writer, answer


async def raw_upstream(frames_to_send: list[bytes], received: list[bytes], answer_after: int = 0):
    """An upstream that answers 101 (once it has read `answer_after` bytes after the request) and then
    sends `frames_to_send` as they are, keeping all it reads."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        while sum(map(len, received)) < answer_after and (data := await reader.read(65536)):
            received.append(data)
        key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"".join(frames_to_send))
        while data := await reader.read(65536):
            received.append(data)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def event_frame(text: str, masked: bool) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=masked, extensions=[])


def broken_frames(masked: bool) -> tuple[list[bytes], list[tuple[str, bytes | None]]]:
    """Good events and frames that break RFC 6455 in turn; and what must be recorded for each, in order:
    (type, raw payload of an invalid.frame)."""
    def raw(first: int, payload: bytes) -> bytes:  # a frame header written by hand, payload unmasked
        mask = b"\x01\x02\x03\x04"
        second = (0x80 if masked else 0) | len(payload)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
        return bytes([first, second]) + (mask if masked else b"") + body

    good = [orjson.dumps({"type": "conversation.item.create", "event_id": f"g{i}"}).decode() for i in range(5)]
    wire = [event_frame(good[0], masked), raw(0x83, b"opcode three"), event_frame(good[1], masked),
            raw(0xA1, b"rsv2 set"), raw(0x80, b"continuation of nothing"), event_frame(good[2], masked),
            raw(0x09, b"a fragmented ping"), event_frame(good[3], masked), raw(0xC1, b"rsv1 without deflate"),
            event_frame(good[4], masked)]
    expected = [("conversation.item.create", None), (schema.INVALID_FRAME, b"opcode three"),
                ("conversation.item.create", None), (schema.INVALID_FRAME, b"rsv2 set"),
                (schema.INVALID_FRAME, b"continuation of nothing"), ("conversation.item.create", None),
                (schema.INVALID_FRAME, b"a fragmented ping"), ("conversation.item.create", None),
                (schema.INVALID_FRAME, b"rsv1 without deflate"), ("conversation.item.create", None)]
    return wire, expected


def by_query(out: Path) -> dict[str, list[dict]]:
    return {orjson.loads(rows[0]["payload"])["query"]: rows for rows in session_rows(out).values()}


@in_loop
async def test_a_deflate_bomb_is_cut_at_the_cap_and_a_neighbour_stays_fully_recorded(tmp_path) -> None:
    bomb = bomb_frame(BOMB)
    neighbour_sent: list[str] = []

    async def neighbour(ws, stop: asyncio.Event) -> None:
        for i in range(100_000):  # 1,000 at most: the bomb ends the loop long before
            if stop.is_set() and i >= 20:
                return
            text = orjson.dumps({"type": "conversation.item.create", "event_id": f"n{i}"}).decode()
            neighbour_sent.append(text)
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 30) == text
            await asyncio.sleep(0.005)

    async with serve(echo, "127.0.0.1", 0, compression="deflate") as upstream:  # max_size 1 MiB: it refuses
        proc, port = await start_proxy(upstream.sockets[0].getsockname()[1], tmp_path)
        try:
            [child] = recorder_processes(proc.pid)
            before = vm_hwm(child)
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=neighbour", compression="deflate") as ws:
                await ws.recv()  # the upstream's first event
                stop = asyncio.Event()
                chatter = asyncio.create_task(neighbour(ws, stop))
                reader, writer, answer = await raw_client(port, "model=bomb", "permessage-deflate")
                assert b"permessage-deflate" in answer
                writer.write(bomb)
                await writer.drain()
                close = await asyncio.wait_for(reader.read(), 30)  # the upstream refuses it and closes
                writer.close()
                stop.set()
                await asyncio.wait_for(chatter, 60)
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=after") as ws:
                await ws.recv()
                await ws.send('{"type":"response.create"}')
                assert await ws.recv() == '{"type":"response.create"}'
        finally:
            code, output, peak = await asyncio.to_thread(stop_watching_peak, proc, child)

    assert b"\x03\xf1" in close  # 1009, message too big, passed on to the attacker
    assert code == 0, output
    assert peak - before < BOMB_GROWTH_BOUND, f"recorder grew by {(peak - before) >> 20} MiB"
    assert not recorder_processes(proc.pid)
    runs = by_query(tmp_path)
    assert set(runs) == {"model=neighbour", "model=bomb", "model=after"}
    neighbour_rows = runs["model=neighbour"]
    assert [r["payload"] for r in neighbour_rows if r["direction"] == schema.CLIENT] == neighbour_sent
    assert [r["type"] for r in neighbour_rows if r["direction"] == schema.PROXY] == [schema.PROXY_OPEN,
                                                                                     schema.PROXY_CLOSE]
    bomb_rows = runs["model=bomb"]
    [cut] = [orjson.loads(r["payload"]) for r in bomb_rows if r["type"] == schema.PROXY_ERROR]
    assert f"over the {tap.MAX_MESSAGE} byte cap" in cut["error"]
    assert (cut["direction"], cut["wire_bytes"], cut["message_bytes"]) == ("client", len(bomb) - 14, None)
    assert orjson.loads(bomb_rows[-1]["payload"])["unrecorded"] == {"messages": 1, "frames": 0,
                                                                    "wire_bytes": len(bomb) - 14}
    assert [r["type"] for r in runs["model=after"]] == [schema.PROXY_OPEN, "session.created", "response.create",
                                                      "response.create", schema.PROXY_CLOSE]


@in_loop
async def test_frames_that_break_the_protocol_are_recorded_raw_and_parsing_goes_on(tmp_path) -> None:
    to_client, expect_server = broken_frames(masked=False)
    to_server, expect_client = broken_frames(masked=True)
    received: list[bytes] = []
    upstream = await raw_upstream(to_client, received)
    proc, port = await start_proxy(upstream.sockets[0].getsockname()[1], tmp_path)
    try:
        reader, writer, _ = await raw_client(port, "model=broken")
        writer.write(b"".join(to_server))
        got = b""
        while len(got) < len(b"".join(to_client)):
            got += await asyncio.wait_for(reader.read(65536), 10)
        await until(lambda: len(b"".join(received)) >= len(b"".join(to_server)))
        writer.close()
    finally:
        upstream.close()
        code, output = stop_proxy(proc)

    assert got == b"".join(to_client) and b"".join(received) == b"".join(to_server)  # forwarded unchanged
    assert code == 0, output
    [rows] = session_rows(tmp_path).values()
    for direction, expected in ((schema.CLIENT, expect_client), (schema.SERVER, expect_server)):
        recorded = [(r["type"], r["audio"]) for r in rows if r["direction"] == direction]
        assert recorded == expected
        errors = [orjson.loads(r["payload"]) for r in rows if r["type"] == schema.PROXY_ERROR
                  and orjson.loads(r["payload"]).get("direction") == direction]
        assert len(errors) == 1 and "breaks the WebSocket protocol" in errors[0]["error"]
        invalid = [orjson.loads(r["payload"]) for r in rows if r["direction"] == direction
                   and r["type"] == schema.INVALID_FRAME]
        assert [i["opcode"] for i in invalid] == [3, 1, 0, 9, 1] and all(i["error"] for i in invalid)
    closed = orjson.loads(rows[-1]["payload"])
    assert closed["unrecorded"]["frames"] == 10


@in_loop
async def test_a_stream_cut_inside_a_frame_is_counted(tmp_path) -> None:
    received: list[bytes] = []
    upstream = await raw_upstream([], received)
    proc, port = await start_proxy(upstream.sockets[0].getsockname()[1], tmp_path)
    whole = event_frame('{"type":"conversation.item.create","event_id":"whole"}', True)
    half = event_frame('{"type":"conversation.item.create","event_id":"half"}' + " " * 1000, True)[:600]
    try:
        _, writer, _ = await raw_client(port, "model=cut")
        writer.write(whole + half)
        await until(lambda: len(b"".join(received)) >= len(whole + half))
        writer.close()
    finally:
        upstream.close()
        code, output = stop_proxy(proc)

    assert code == 0, output
    [rows] = session_rows(tmp_path).values()
    assert [r["event_id"] for r in rows if r["direction"] == schema.CLIENT] == ["whole"]
    [cut] = [orjson.loads(r["payload"]) for r in rows if r["type"] == schema.PROXY_ERROR]
    assert "ended inside a frame" in cut["error"] and cut["wire_bytes"] == 600  # header included
    assert orjson.loads(rows[-1]["payload"])["unrecorded"]["messages"] == 1


@in_loop
async def test_any_failure_of_the_writer_thread_stops_the_proxy_with_a_non_zero_status(tmp_path) -> None:
    """The writer thread fails on a record (a stand-in for any bug: ArrowCapacityError was one): the
    recorder exits, the proxy stops relaying, refuses new sessions, and exits non-zero by itself."""
    child = ("from rtreplay.recorder import writer\nfrom rtreplay.recorder.child import main\n"
             "original = writer.records_to_batch\n"
             "def records_to_batch(rows):\n"
             "    if any('writer-boom' in (r[9] or '') for r in rows):\n"
             "        raise RuntimeError('injected writer failure')\n"
             "    return original(rows)\n"
             "writer.records_to_batch = records_to_batch\nmain()\n")
    proxy_code = ("import sys\nfrom rtreplay.recorder import link\n"
                  f"link.CHILD_COMMAND = [sys.executable, '-c', {child!r}]\n"
                  "from rtreplay.cli import main\nmain()\n")
    port = free_port()

    async with serve(echo, "127.0.0.1", 0) as upstream:
        proc = subprocess.Popen([sys.executable, "-c", proxy_code, "proxy", "--listen", f"127.0.0.1:{port}",
                                 "--upstream", f"ws://127.0.0.1:{upstream.sockets[0].getsockname()[1]}",
                                 "--out", str(tmp_path), "--flush-interval", "0.05"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(400):
                try:
                    async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=first") as ws:
                        await ws.recv()
                        break
                except OSError:
                    await asyncio.sleep(0.05)
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=boom") as ws:
                await ws.recv()
                await ws.send('{"type":"x.writer-boom"}')
                closed = False
                try:
                    for _ in range(2000):  # 20 s at most: the writer wakes every 25 ms
                        await asyncio.wait_for(ws.recv(), 10)
                        await asyncio.sleep(0.01)
                        await ws.send('{"type":"x.after"}')
                except Exception:
                    closed = True
                assert closed, "the session was still relayed after the recorder failed"
            code = await asyncio.to_thread(proc.wait, 30)
        finally:
            if proc.poll() is None:
                proc.kill()
            output = b"".join(proc.communicate()).decode("utf-8", "replace")
    assert code != 0
    assert "writer thread failed" in output and "injected writer failure" in output


@in_loop
async def test_client_bytes_before_the_answer_are_held_only_up_to_a_bound_and_the_rest_is_counted(tmp_path) -> None:
    """A client that streams before the upstream answers the upgrade: the recorder holds at most
    `child.MAX_EARLY` of it; past that the client stream cannot be parsed (its start is gone), so every
    byte from there on is one counted loss, and the server stream is still recorded."""
    from rtreplay.recorder.child_connection import MAX_EARLY

    frames = [event_frame('{"type":"input_audio_buffer.append","audio":"%s"}' % ("A" * 60_000), True)] * 90
    sent = b"".join(frames)  # ≈ 5.4 MB, more than MAX_EARLY
    assert len(sent) > MAX_EARLY
    received: list[bytes] = []
    upstream = await raw_upstream([event_frame('{"type":"session.created"}', False)], received, len(sent))
    proc, port = await start_proxy(upstream.sockets[0].getsockname()[1], tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/realtime?run=early HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert answer.startswith(b"HTTP/1.1 101")
        await asyncio.wait_for(reader.readexactly(2 + len('{"type":"session.created"}')), 10)
        writer.close()
    finally:
        upstream.close()
        code, output = stop_proxy(proc)

    assert code == 0, output
    assert b"".join(received) == sent
    [rows] = session_rows(tmp_path).values()
    assert [r["type"] for r in rows if r["direction"] == schema.SERVER] == ["session.created"]
    client = [r for r in rows if r["direction"] == schema.CLIENT]
    errors = [orjson.loads(r["payload"]) for r in rows if r["type"] == schema.PROXY_ERROR]
    recorded = sum(r["size"] for r in client) + sum(e["wire_bytes"] for e in errors)
    assert any(str(MAX_EARLY) in e["error"] for e in errors)
    assert len(sent) - 90 * 14 <= recorded <= len(sent)  # every byte a record or counted (headers aside)
    assert orjson.loads(rows[-1]["payload"])["unrecorded"]["wire_bytes"] == sum(e["wire_bytes"] for e in errors)
