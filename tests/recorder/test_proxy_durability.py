"""What survives: kill -9 then `rtreplay recover`, SIGTERM, a slow writer (backpressure), a full disk."""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rtreplay.recorder import archive, link, schema
from rtreplay.recorder.proxy import running
from reliability_support import RTREPLAY, echo_back, start_proxy
from test_proxy_relay import in_loop, session_rows

AUDIO = base64.b64encode(os.urandom(24 * 1024)).decode()


def frame(i: int) -> str:
    if i % 3:
        return orjson.dumps({"type": "conversation.item.create", "event_id": f"e{i}"}).decode()
    return '{"type":"input_audio_buffer.append","event_id":"e%d","audio":"%s"}' % (i, AUDIO)


def patch_journal_append(monkeypatch, replacement: str) -> None:
    """Run the recorder process with `JournalFile.append` replaced: `replacement` is the source of a
    function `append(self, data)` that may call `original(self, data)` (the recorder is another process)."""
    code = ("import errno, os, time\nfrom rtreplay.recorder.journal import JournalFile\nfrom rtreplay.recorder.child import main\n"
            f"original = JournalFile.append\n{replacement}\nJournalFile.append = append\nmain()\n")
    monkeypatch.setattr(link, "CHILD_COMMAND", [sys.executable, "-c", code])


async def stream_until_stopped(url: str, stop_after: float, stop) -> tuple[dict[str, float], float]:
    """Send frames one by one, noting when each echo came back; call `stop()` after `stop_after` s."""
    acked: dict[str, float] = {}
    stopped_at = float("inf")
    async with connect(url, max_size=None) as ws:
        start = time.monotonic()
        try:
            for i in range(1_000_000):
                await ws.send(frame(i))
                await ws.recv()
                acked[f"e{i}"] = time.monotonic()
                if stopped_at == float("inf") and time.monotonic() - start > stop_after:
                    stopped_at = time.monotonic()
                    stop()
        except ConnectionClosed:
            pass
    return acked, stopped_at


def recorded_ids(out: Path, direction: str) -> set[str]:
    table = archive.read_archive(out).table.to_pylist()
    return {r["event_id"] for r in table if r["direction"] == direction}


@in_loop
async def test_kill_9_then_recover_keeps_everything_forwarded_before_the_last_flush(tmp_path) -> None:
    async with serve(echo_back, "127.0.0.1", 0, max_size=None) as server:
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], tmp_path)
        acked, killed_at = await stream_until_stopped(f"ws://127.0.0.1:{port}/v1/realtime", 2.0,
                                                     lambda: os.kill(proc.pid, signal.SIGKILL))
    proc.wait(10)
    for _ in range(200):  # the recorder process outlives the proxy and finalizes what it was handed
        if not list((tmp_path / "journal").glob("*.arrows")):
            break
        await asyncio.sleep(0.05)
    recovered = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert recovered.returncode == 0 or "cut short" in recovered.stderr, recovered.stderr
    old_enough = {eid for eid, at in acked.items() if at < killed_at - 0.5}
    assert len(old_enough) > 100
    assert old_enough <= recorded_ids(tmp_path, schema.CLIENT)
    assert old_enough <= recorded_ids(tmp_path, schema.SERVER)
    assert not list((tmp_path / "journal").glob("*.arrows"))


@in_loop
async def test_sigterm_loses_nothing(tmp_path) -> None:
    async with serve(echo_back, "127.0.0.1", 0, max_size=None) as server:
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], tmp_path)
        acked, _ = await stream_until_stopped(f"ws://127.0.0.1:{port}/v1/realtime", 1.0,
                                              lambda: os.kill(proc.pid, signal.SIGTERM))
    assert proc.wait(20) == 0
    [rows] = session_rows(tmp_path).values()
    assert set(acked) <= {r["event_id"] for r in rows if r["direction"] == schema.SERVER}
    assert rows[-1]["type"] == schema.PROXY_CLOSE


@in_loop
async def test_slow_writer_applies_backpressure_and_drops_nothing(tmp_path, monkeypatch) -> None:
    patch_journal_append(monkeypatch, "def append(self, data):\n    time.sleep(0.05)\n    original(self, data)")
    high_water = 256 * 1024
    n = 300

    async def burst(ws) -> None:
        for i in range(n):
            await ws.send('{"type":"response.output_audio.delta","event_id":"s%d","delta":"%s"}' % (i, AUDIO))
        await ws.wait_closed()

    async with serve(burst, "127.0.0.1", 0, max_size=None) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path,
                           flush_interval=0.05, high_water=high_water) as proxy:
            async with connect(proxy.url, max_size=None) as ws:
                got = [await ws.recv() for _ in range(n)]
            writer = proxy.writer
            assert writer.pauses + writer.session_pauses > 0  # the one session floods: paused alone, or all
            # Soft cap: one socket read (at most 256 KiB here) may land after the pause.
            assert writer.peak_queued_bytes < high_water + 512 * 1024 < n * len(AUDIO) / 4

    assert len(got) == n
    [rows] = session_rows(tmp_path).values()
    assert [r["event_id"] for r in rows if r["direction"] == schema.SERVER] == [f"s{i}" for i in range(n)]
    assert writer.lost_records == 0


@in_loop
async def test_disk_full_keeps_forwarding_and_records_the_loss(tmp_path, monkeypatch) -> None:
    disk_full = tmp_path / ".disk-full"  # while this file exists, journal writes fail
    patch_journal_append(monkeypatch, f"def append(self, data):\n    if os.path.exists({str(disk_full)!r}):\n"
                                      "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
                                      "    original(self, data)")
    async with serve(echo_back, "127.0.0.1", 0) as server:
        async with running(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", tmp_path,
                           flush_interval=0.05) as proxy:
            async with connect(proxy.url) as ws:
                for i in range(60):
                    if i in (20, 40):
                        disk_full.touch() if i == 20 else disk_full.unlink()
                    await ws.send(orjson.dumps({"type": "x", "event_id": f"e{i}"}).decode())
                    assert orjson.loads(await ws.recv())["event_id"] == f"e{i}"
                    await asyncio.sleep(0.01)
            lost = proxy.writer.lost_records

    assert lost > 0
    [rows] = session_rows(tmp_path).values()
    errors = [orjson.loads(r["payload"]) for r in rows if r["type"] == schema.PROXY_ERROR]
    assert sum(e["lost_records"] for e in errors) == lost
    assert len(rows) + lost == 2 + 120 + len(errors)  # open + close + 60 each way + the error records
    assert {f"e{i}" for i in range(50, 60)} <= {r["event_id"] for r in rows}
