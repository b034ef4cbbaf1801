"""The proxy <-> recorder process wire: framing round trips, and what happens when the recorder dies."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtreplay.recorder import child, framing
from rtreplay.recorder.link import RecorderLink
from rtreplay.recorder.proxy import running
from reliability_support import echo_back
from test_proxy_relay import in_loop, session_rows

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
    async with serve(echo_back, "127.0.0.1", 0) as server:
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


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads a process's niceness from /proc (Linux)")
@in_loop
async def test_the_recorder_process_steps_aside_for_the_relay(tmp_path) -> None:
    """The recorder runs niced (the relay wins the CPU whenever both want it) and records all the same."""
    async with serve(echo_back, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            stat = open(f"/proc/{proxy.writer.process.pid}/stat").read().rsplit(")", 1)[1].split()
            # Field 19 of stat is the niceness (this holds trivially when the tests themselves run at nice 19).
            assert int(stat[16]) == min(19, os.nice(0) + child.NICE)
            async with connect(proxy.url) as ws:
                await ws.send('{"type":"x"}')
                assert await ws.recv() == '{"type":"x"}'
    [rows] = session_rows(tmp_path).values()
    assert [r["type"] for r in rows] == ["proxy.open", "x", "x", "proxy.close"]


def test_stepping_aside_lowers_priority_and_freezes_start_up_objects() -> None:
    code = ("import gc, os\nfrom rtreplay.recorder import child\nbefore = os.nice(0)\nchild._step_aside()\n"
            "print(before, os.nice(0), gc.get_freeze_count())")
    before, after, frozen = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                    check=True, timeout=60).stdout.split())
    assert after == min(19, before + child.NICE) and frozen > 1000


@in_loop
async def test_what_the_socket_cannot_take_waits_uncopied_and_bounded_then_arrives_whole_and_in_order() -> None:
    """The link writes its batches straight to the socket; when the recorder does not read, the rest waits
    in the link (views of the same bytes), every connection is paused past `high_water`, and once the
    recorder reads again every frame arrives, in order, and the connections resume."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    link = RecorderLink(None, ours, high_water=1 << 20)  # type: ignore[arg-type]  # no process: not closed here
    events = []
    link.on_pause, link.on_resume = lambda: events.append("pause"), lambda: events.append("resume")
    chunks = [os.urandom(1000 + i) for i in range(3000)]  # ≈ 4.5 MB: far more than the socket's buffer
    for i, chunk in enumerate(chunks):
        link.data(i % 7 + 1, framing.CLIENT, chunk, i, i)
    link._flush()
    assert link.paused and events == ["pause"]
    assert link._out_bytes > link.high_water and all(type(piece) is memoryview for piece in link._out)
    theirs.setblocking(False)
    decoder, got = framing.Decoder(), []
    while len(got) < len(chunks):
        await asyncio.sleep(0.001)  # the link's writer callback sends the rest as the socket drains
        try:
            got += decoder.feed(theirs.recv(1 << 20))
        except BlockingIOError:
            pass
    assert [(f.conn, f.payload) for f in got] == [(i % 7 + 1, c) for i, c in enumerate(chunks)]
    assert not link.paused and events == ["pause", "resume"] and link.queued_bytes == 0
    link._drop_socket()
    theirs.close()
