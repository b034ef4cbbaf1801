"""The proxy <-> recorder process wire: framing round trips, and what happens when the recorder dies."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtreplay.recorder import framing
from rtreplay.recorder.proxy import running
from test_proxy_relay import in_loop

frames = st.lists(st.builds(framing.Frame, st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255),
                            st.integers(-2**63, 2**63 - 1), st.integers(-2**63, 2**63 - 1), st.binary(max_size=300)),
                  max_size=20)


@settings(max_examples=200, deadline=None)
@given(frames, st.lists(st.integers(1, 500), min_size=1))
def test_frames_survive_any_split_of_the_stream(sent: list[framing.Frame], cuts: list[int]) -> None:
    stream = b"".join(framing.encode(*f) for f in sent)
    decoder, got, at = framing.Decoder(), [], 0
    for cut in cuts * (len(stream) // sum(cuts) + 1):
        got += decoder.feed(stream[at:at + cut])
        at += cut
    assert got == sent and decoder.pending == 0


@in_loop
async def test_a_dead_recorder_stops_the_relay_instead_of_letting_traffic_through_unrecorded(tmp_path) -> None:
    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            async with connect(proxy.url) as ws:
                await ws.send('{"type":"x"}')
                assert await ws.recv() == '{"type":"x"}'
                os.kill(proxy.writer.process.pid, signal.SIGKILL)
                with pytest.raises(ConnectionClosed):
                    for _ in range(1000):  # 10 s at most: the child's death takes a moment on a loaded machine
                        await ws.send('{"type":"x"}')
                        await asyncio.wait_for(ws.recv(), 10)
                        await asyncio.sleep(0.01)
            with pytest.raises(InvalidStatus) as refused:
                async with connect(proxy.url):
                    pass
            assert refused.value.response.status_code == 503
            assert proxy.writer.failed
