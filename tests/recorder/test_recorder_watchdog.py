"""The upstream watchdog's frame-boundary tracking, and the 504 a silent upstream handshake gets the app."""
from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from rtreplay.recorder.proxy import running
from rtreplay.recorder.watchdog import FrameBoundary, close_frame

HEAD = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


def _frame(size: int, mask: bool) -> bytes:
    frame = Frame(Opcode.BINARY, b"x" * size)
    return frame.serialize(mask=mask, extensions=[])


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), max_size=6),
    masks=st.lists(st.booleans(), min_size=6, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=400_000), max_size=20),
)
def test_boundaries_are_found_whatever_the_chunking(sizes, masks, cuts) -> None:
    stream, ends = HEAD, {len(HEAD)}
    for size, mask in zip(sizes, masks):
        stream += _frame(size, mask)
        ends.add(len(stream))
    tracker, at = FrameBoundary(), 0
    for cut in sorted({c for c in cuts if c < len(stream)}) + [len(stream)]:
        tracker.feed(stream[at:cut])
        at = cut
        assert tracker.between_frames == (at in ends), at
    assert not tracker.in_head


def test_close_frame_is_a_valid_server_close() -> None:
    frame = close_frame(1011, "upstream timeout")
    assert frame[:2] == bytes([0x88, 2 + len("upstream timeout")])
    assert int.from_bytes(frame[2:4], "big") == 1011 and frame[4:] == b"upstream timeout"


async def test_an_upstream_that_never_answers_the_upgrade_gets_the_app_a_504(tmp_path) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # accepts the TCP connection, never answers the HTTP upgrade

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running(f"ws://127.0.0.1:{port}", tmp_path, upstream_timeout=0.5) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout"), answer
    assert b"upstream timeout" in answer
